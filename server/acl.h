/* SPDX-License-Identifier: Apache-2.0 */
/*
 * acl.h - who may connect: source address allow lists ("127.0.0.1/32, 10.1.0.0/16,
 * [::1]/128") and the count of open connections per source address (max_clients_per_address).
 *
 * An allow list is parsed once (with the configuration) into a plain value: no allocation,
 * no ownership, safe to copy and to read from any thread. IPv4 rules also match IPv4-mapped
 * IPv6 sources (::ffff:10.1.2.3, what a dual-stack socket reports for an IPv4 client).
 *
 * The per-address counts are one table for the process, across listeners and worker threads
 * (a mutex, taken once when a connection is accepted and once when it closes; never on the
 * processing path).
 */
#ifndef CONVD_ACL_H
#define CONVD_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CVD_ACL_MAX 64 /* rules in one list */

typedef struct cvd_acl_rule {
    uint8_t family;   /* 4 or 6 */
    uint8_t prefix;   /* 0..32 or 0..128 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes */
} cvd_acl_rule;

typedef struct cvd_acl {
    int n; /* 0: no list, every address is admitted */
    cvd_acl_rule rules[CVD_ACL_MAX];
} cvd_acl;

/*
 * Parses a list of rules separated by commas (blanks around them are fine):
 *   a.b.c.d        one IPv4 address (/32)      a.b.c.d/N    an IPv4 network, N 0..32
 *   [v6]  or  v6   one IPv6 address (/128)     [v6]/N, v6/N an IPv6 network, N 0..128
 * Addresses are numeric (no names), without scope ids or leading zeros in IPv4. A network
 * whose address has bits set past its prefix (10.1.2.3/16) is an error (it names the network
 * meant: 10.1.0.0/16), as is an empty list or entry. Returns 0, or -1 with the reason in why
 * ("'10.1.2.3/16': bits set past the /16 prefix (the network is 10.1.0.0/16)").
 */
int cvd_acl_parse(const char *text, cvd_acl *out, char *why, size_t why_cap);

/* 1 if the address (AF_INET or AF_INET6 sockaddr) is admitted: the list is empty or a rule
 * matches. Other families are refused by a non-empty list. */
int cvd_acl_allows(const cvd_acl *a, const struct sockaddr *sa);

/* The list as canonical text ("127.0.0.1/32, [::1]/128"; "all" when empty), cut to fit. */
void cvd_acl_format(const cvd_acl *a, char *buf, size_t cap);

/* The numeric text of an address ("10.1.2.3", "::1"; an IPv4-mapped IPv6 one as IPv4). */
void cvd_addr_text(const struct sockaddr *sa, char *buf, size_t cap);

/* ---- connections per source address ----------------------------------------------------- */

/* Counts one more connection from the address, unless `max` (> 0) are open already: returns
 * 1 if counted (call cvd_peer_release once it closes), 0 if refused; out of memory counts as
 * admitted but untracked (returns 2: do not release). max <= 0: no limit, nothing counted
 * (returns 2). IPv4-mapped IPv6 addresses count as their IPv4 address. */
int cvd_peer_acquire(const struct sockaddr *sa, int max);
void cvd_peer_release(const struct sockaddr *sa);
/* Open connections counted for the address (tests). */
int cvd_peer_count(const struct sockaddr *sa);

#ifdef __cplusplus
}
#endif

#endif
