/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The protocol adapters, by the config's protocol (conn.h). A new protocol: its adapter file,
 * its row here, and its name in the config's protocol list.
 */
#include "conn.h"

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
