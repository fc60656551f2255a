/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_mutate.h - a model file with each of its keys removed in turn, for the loader tests:
 * every object of the document (recursively), every key, one at a time. Each variant must load
 * (and then stream a block), or fail with a message; with `name_key`, a message that names
 * the removed key (or the weights, whose count a removed size changes).
 */
#ifndef CONVD_JSON_MUTATE_H
#define CONVD_JSON_MUTATE_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "convd_dsp.h"
#include "testutil.h"

typedef int (*jm_loader)(const char *text, size_t len, cvd_model **out, cvd_err *err);

#define JM_MAX_OBJECTS 256

static void jm_collect(json_t *v, json_t **objs, int *n)
{
    if (json_is_object(v)) {
        if (*n < JM_MAX_OBJECTS)
            objs[(*n)++] = v;
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            jm_collect(c, objs, n);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            jm_collect(json_array_get(v, i), objs, n);
    }
}

/* loads `root` as dumped; a model that loads streams one block of 8 frames */
static void jm_try(json_t *root, jm_loader load, const char *key, int name_key, const char *file)
{
    char *text = json_dumps(root, JSON_COMPACT);
    cr_assert_not_null(text);
    cvd_model *m = NULL;
    cvd_err err = {0};
    if (load(text, strlen(text), &m, &err) == 0) {
        cvd_net *net;
        if (cvd_net_create(m, 8, &net, &err) == 0) {
            const int ci = cvd_model_in_channels(m);
            float *in = calloc((size_t)8 * (size_t)ci + 1, sizeof(float));
            float *out =
                calloc((size_t)cvd_net_max_out(net) * (size_t)cvd_model_out_channels(m) + 1,
                       sizeof(float));
            int no;
            cr_assert(in && out);
            cvd_net_process(net, in, 8, out, &no);
            while (cvd_net_flush(net, out, &no) == 1)
                ;
            free(in);
            free(out);
            cvd_net_destroy(net);
        }
        cvd_model_unref(m);
    } else {
        cr_expect(err.msg[0] != '\0', "%s without \"%s\": an error with no message", file, key);
        if (name_key)
            cr_expect(strstr(err.msg, key) != NULL || strstr(err.msg, "weight") != NULL,
                      "%s without \"%s\": the message does not name it: %s", file, key, err.msg);
    }
    free(text);
}

static void jm_remove_each_key(const char *file, jm_loader load, int name_key)
{
    size_t len;
    char *text = tu_read_file(file, &len);
    cr_assert_not_null(text, "cannot read %s", file);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    cr_assert_not_null(root, "%s: %s", file, je.text);
    json_t *objs[JM_MAX_OBJECTS];
    int n = 0;
    jm_collect(root, objs, &n);
    for (int i = 0; i < n; i++) {
        /* the key strings live in the object: copy them before it changes */
        size_t nk = json_object_size(objs[i]), j = 0;
        char(*keys)[128] = calloc(nk + 1, sizeof *keys);
        cr_assert_not_null(keys);
        const char *k;
        json_t *v;
        json_object_foreach(objs[i], k, v)
        {
            snprintf(keys[j++], sizeof keys[0], "%s", k);
        }
        for (j = 0; j < nk; j++) {
            json_t *saved = json_incref(json_object_get(objs[i], keys[j]));
            cr_assert_eq(json_object_del(objs[i], keys[j]), 0);
            jm_try(root, load, keys[j], name_key, file);
            json_object_set_new(objs[i], keys[j], saved);
        }
        free(keys);
    }
    json_decref(root);
}

#endif
