/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The protocol adapters, by the config's protocol (conn.h). A new protocol: its adapter file,
 * its row here, and its name in the config's protocol list.
 */
#include "conn.h"
#include "log.h"
#include "metrics.h"

static const struct {
    cvd_proto protocol;
    const cvd_adapter *adapter;
} adapters[] = {
    {CVD_PROTO_RAW, &cvd_adapter_raw},
    {CVD_PROTO_FRAMED, &cvd_adapter_framed},
    {CVD_PROTO_LINE, &cvd_adapter_line},
};

const cvd_adapter *cvd_adapter_find(cvd_proto protocol)
{
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
        if (adapters[i].protocol == protocol)
            return adapters[i].adapter;
    return NULL;
}

/* The listener's stream and then the adapter's decoder (`make`); 0, or -1 when the client was
 * refused or closed. */
static int start_listener_stream(cvd_conn *c, cvd_adapter_decoder_fn make, void *state)
{
    const cvd_conf_listen *lc = cvd_conn_listener(c);
    cvd_err err = {0};
    int rc = cvd_conn_start_chain(c, lc->chain_index, lc->n_chain, lc->rate_line ? lc->rate : 0,
                                  lc->block, &err);
    if (rc == CVD_ERANGE) {
        cvd_conn_refuse(c, CVD_FR_E_BUSY, CVD_DISC_MEMORY, err.msg);
        return -1;
    }
    if (rc == 0)
        rc = make(c, state, &err);
    if (rc < 0) {
        cvd_log_error("%s: %s", cvd_conn_peer(c), err.msg);
        cvd_conn_close(c, CVD_DISC_ERROR);
        return -1;
    }
    cvd_conn_running(c, CVD_SERIES_LISTENER, lc->name);
    return 0;
}

int cvd_adapter_first_bytes(cvd_conn *c, int started, cvd_adapter_decoder_fn make, void *state)
{
    const uint8_t *p;
    if (started)
        return 1;
    if (cvd_conn_input(c, &p) > 0)
        start_listener_stream(c, make, state);
    return 0; /* the stream is being built: decode comes back when it is */
}
