/* SPDX-License-Identifier: Apache-2.0 */
/* window7_model.h - a windowed classifier in convd's JSON, for tests/test_eager.c and
 * tests/bench/reply_latency.c: windows of 7 frames of 1 channel, valid Conv1D of
 * kernel 3 (2 filters, tanh), Flatten, Dense 3: one record of 3 values per window. */
#ifndef CONVD_TEST_WINDOW7_MODEL_H
#define CONVD_TEST_WINDOW7_MODEL_H

static const char cvd_test_window7_json[] =
    "{\"format\": \"convd-model\", \"version\": 1, \"name\": \"window7\", \"layers\": ["
    "{\"class_name\": \"InputLayer\", \"name\": \"in\", \"config\": {\"batch_shape\": [null, 7, "
    "1]}},"
    "{\"class_name\": \"Conv1D\", \"name\": \"c\", \"config\": {\"filters\": 2, \"kernel_size\": "
    "3, \"padding\": \"valid\", \"activation\": \"tanh\"}, \"weights\": [[-0.352334, -0.698302, "
    "0.301869, -0.855127, 0.071764, -0.268622], [-0.884002, 0.014871]]},"
    "{\"class_name\": \"Flatten\", \"name\": \"f\", \"config\": {}},"
    "{\"class_name\": \"Dense\", \"name\": \"d\", \"config\": {\"units\": 3}, \"weights\": "
    "[[-0.925009, -0.132709, -0.860289, -0.818574, -0.150962, 0.653704, -0.752396, -0.553522, "
    "0.254866, 0.895418, 0.154206, -0.206639, 0.95251, -0.906835, 0.716937, -0.420781, "
    "-0.71149, -0.764416, -0.383036, 0.632253, -0.638547, 0.1632, 0.277827, -0.255205, "
    "0.095489, -0.874422, -0.880798, -0.588083, 0.3608, -0.144815], [-0.371706, 0.171124, "
    "-0.093631]]}]}";

#endif
