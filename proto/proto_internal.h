/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the proto/ files share and nobody else sees: little-endian field access and the
 * process's C locale object. Not installed, not included outside proto/.
 */
#ifndef CONVD_PROTO_INTERNAL_H
#define CONVD_PROTO_INTERNAL_H

#include <locale.h>
#include <stdint.h>

static inline uint16_t cvd__rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t cvd__rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t cvd__rd64(const uint8_t *p)
{
    return (uint64_t)cvd__rd32(p) | (uint64_t)cvd__rd32(p + 4) << 32;
}

static inline void cvd__wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void cvd__wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void cvd__wr64(uint8_t *p, uint64_t v)
{
    cvd__wr32(p, (uint32_t)v);
    cvd__wr32(p + 4, (uint32_t)(v >> 32));
}

/* The C locale as an object, created once (never freed: it lives as long as the process);
 * (locale_t)0 if it cannot be had. text.c. */
locale_t cvd__c_locale(void);

#endif
