/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tokens.c - server/tokens.c: the tokens file's format, roles and stream patterns, its
 * refusals by line, and its mode check.
 */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "daemon_util.h"
#include "tokens.h"

static void suite_init(void)
{
    du_tmp_make();
}

static void suite_fini(void)
{
    du_tmp_remove();
}

TestSuite(tokens, .init = suite_init, .fini = suite_fini);

static cvd_tokens *parse_ok(const char *text)
{
    cvd_tokens *t = NULL;
    cvd_err err = {0};
    cr_assert_eq(cvd_tokens_parse(text, "tok", &t, &err), 0, "%s", err.msg);
    return t;
}

Test(tokens, the_issues_example)
{
    cvd_tokens *t = parse_ok("s3cr3t-token  process,publish=studio-*,subscribe=studio-*\n");
    cr_assert_eq(cvd_tokens_count(t), 1);
    const cvd_token *k = cvd_tokens_find(t, "s3cr3t-token");
    cr_assert_not_null(k);
    cr_assert_eq(cvd_token_line(k), 1);
    cr_assert(cvd_token_may_process(k));
    cr_assert(cvd_token_may_publish(k, "studio-a"));
    cr_assert(cvd_token_may_publish(k, "studio-"));
    cr_assert(!cvd_token_may_publish(k, "live-a"));
    cr_assert(cvd_token_may_subscribe(k, "studio-mix"));
    cr_assert(!cvd_token_may_subscribe(k, "Studio-mix"), "patterns are case-sensitive");
    cr_assert_null(cvd_tokens_find(t, "s3cr3t-tokeN"));
    cr_assert_null(cvd_tokens_find(t, "s3cr3t-token "));
    cr_assert_null(cvd_tokens_find(t, "s3cr3t"));
    cr_assert_null(cvd_tokens_find(t, ""));
    cr_assert_null(cvd_tokens_find(t, NULL));
    cr_assert(cvd_tokens_claim_publish(t, "studio-x"));
    cr_assert(!cvd_tokens_claim_publish(t, "other"));
    cvd_tokens_destroy(t);
}

Test(tokens, roles_comments_and_blanks)
{
    cvd_tokens *t = parse_ok("# the studio\n"
                             "\n"
                             "   \t\n"
                             "a1  process # runs models, publishes nothing\n"
                             "b2\tsubscribe=mix , subscribe=room-[0-9]\r\n"
                             "c3 publish=live-?\n"
                             "d4 publish=*,subscribe=*,process\n"
                             "e5#x process\n"
                             "  f6 process");
    cr_assert_eq(cvd_tokens_count(t), 6);
    const cvd_token *a = cvd_tokens_find(t, "a1"), *b = cvd_tokens_find(t, "b2"),
                    *c = cvd_tokens_find(t, "c3"), *d = cvd_tokens_find(t, "d4"),
                    *e = cvd_tokens_find(t, "e5#x"), *f = cvd_tokens_find(t, "f6");
    cr_assert(a && b && c && d && e && f);
    cr_assert_eq(cvd_token_line(a), 4);
    cr_assert_eq(cvd_token_line(f), 9);
    cr_assert(cvd_token_may_process(a) && !cvd_token_may_publish(a, "x") &&
              !cvd_token_may_subscribe(a, "x"));
    cr_assert(!cvd_token_may_process(b));
    cr_assert(cvd_token_may_subscribe(b, "mix") && cvd_token_may_subscribe(b, "room-7"));
    cr_assert(!cvd_token_may_subscribe(b, "room-x") && !cvd_token_may_subscribe(b, "mix2"));
    /* publish alone: only streams that publish under a matching name */
    cr_assert(!cvd_token_may_process(c));
    cr_assert(cvd_token_may_publish(c, "live-1") && !cvd_token_may_publish(c, "live-12"));
    cr_assert(cvd_token_may_process(d) && cvd_token_may_publish(d, "anything") &&
              cvd_token_may_subscribe(d, "anything"));
    cr_assert(cvd_token_may_process(e), "'#' inside a token is part of it");
    cvd_tokens_destroy(t);
}

Test(tokens, bad_lines_are_refused_by_line)
{
    struct {
        const char *text, *want;
    } cases[] = {
        {"tok\n", "tok:1: the token has no roles"},
        {"# c\ntok # no roles\n", "tok:2: the token has no roles"},
        {"tok process,\n", "tok:1: an empty role"},
        {"tok process,,subscribe=x\n", "tok:1: an empty role"},
        {"tok ,process\n", "tok:1: an empty role"},
        {"tok admin\n", "tok:1: unknown role 'admin' (process, publish=GLOB, subscribe=GLOB)"},
        {"tok publish\n", "tok:1: 'publish' needs the streams it may use: publish=GLOB"},
        {"tok subscribe=\n", "tok:1: 'subscribe=' needs the streams it may use: subscribe=GLOB"},
        {"tok process\ntok subscribe=x\n", "tok:2: the same token as line 1"},
        {"tok process subscribe=x\n", "tok:1: unknown role 'process subscribe=x'"},
        {"t\x01k process\n",
         "tok:1: a token is printable ASCII without blanks (byte 0x01 at column 2)"},
        {"tok subscribe=a\x7f\n", "a stream pattern has no blanks and only printable ASCII"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvd_tokens *t = (cvd_tokens *)1;
        cvd_err err = {0};
        cr_assert_lt(cvd_tokens_parse(cases[i].text, "tok", &t, &err), 0, "case %zu accepted", i);
        cr_assert_null(t);
        cr_assert(strstr(err.msg, cases[i].want), "case %zu: \"%s\", expected \"%s\"", i, err.msg,
                  cases[i].want);
    }
    /* the longest token, and one byte more */
    char big[CVD_TOKEN_MAX + 32];
    memset(big, 'x', CVD_TOKEN_MAX);
    strcpy(big + CVD_TOKEN_MAX, " process\n");
    cvd_tokens *t = parse_ok(big);
    big[CVD_TOKEN_MAX] = '\0';
    cr_assert_not_null(cvd_tokens_find(t, big));
    cvd_tokens_destroy(t);
    memset(big, 'x', CVD_TOKEN_MAX + 1);
    strcpy(big + CVD_TOKEN_MAX + 1, " process\n");
    cvd_err err = {0};
    cr_assert_lt(cvd_tokens_parse(big, "tok", &t, &err), 0);
    cr_assert(strstr(err.msg, "tok:1: a token of 1025 bytes: at most 1024"), "%s", err.msg);
}

Test(tokens, a_file_every_user_may_read_is_refused)
{
    const char *p = du_tmp("tokens");
    du_write_file(p, "abc process\n", 12);
    cvd_tokens *t = NULL;
    cvd_err err = {0};
    const mode_t bad[] = {0644, 0604, 0602, 0666, 0777};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(chmod(p, bad[i]), 0);
        cr_assert_lt(cvd_tokens_load(p, &t, &err), 0, "mode %04o accepted", (unsigned)bad[i]);
        cr_assert_null(t);
        cr_assert(strstr(err.msg, "by every user") && strstr(err.msg, "chmod o-rwx") &&
                      strstr(err.msg, p),
                  "%s", err.msg);
    }
    const mode_t good[] = {0600, 0640, 0400, 0660};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert_eq(chmod(p, good[i]), 0);
        cr_assert_eq(cvd_tokens_load(p, &t, &err), 0, "mode %04o: %s", (unsigned)good[i], err.msg);
        cr_assert_not_null(cvd_tokens_find(t, "abc"));
        cvd_tokens_destroy(t);
    }
    /* the errors of the file name it, with the line */
    du_write_file(p, "abc process\nabc process\n", 24);
    cr_assert_eq(chmod(p, 0600), 0);
    cr_assert_lt(cvd_tokens_load(p, &t, &err), 0);
    char want[DU_PATH + 64];
    snprintf(want, sizeof want, "%s:2: the same token as line 1", p);
    cr_assert_str_eq(err.msg, want);
    cr_assert_lt(cvd_tokens_load(du_tmp("missing"), &t, &err), 0);
    cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert_lt(cvd_tokens_load(du_tmpdir, &t, &err), 0);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
    du_write_file(p, "abc process\n\0x process\n", 23);
    cr_assert_lt(cvd_tokens_load(p, &t, &err), 0);
    cr_assert(strstr(err.msg, "a NUL byte"), "%s", err.msg);
}

Test(tokens, many_tokens)
{
    du_buf b = {0};
    for (int i = 0; i < 5000; i++)
        du_buf_printf(&b, "token-%05d subscribe=s%d\n", i, i);
    cvd_tokens *t = parse_ok((char *)b.p);
    cr_assert_eq(cvd_tokens_count(t), 5000);
    for (int i = 0; i < 5000; i += 37) {
        char tok[32], s[32];
        snprintf(tok, sizeof tok, "token-%05d", i);
        snprintf(s, sizeof s, "s%d", i);
        const cvd_token *k = cvd_tokens_find(t, tok);
        cr_assert_not_null(k, "%s", tok);
        cr_assert_eq(cvd_token_line(k), i + 1);
        cr_assert(cvd_token_may_subscribe(k, s));
        cr_assert(!cvd_token_may_subscribe(k, "s"));
    }
    cvd_tokens_destroy(t);
    du_buf_free(&b);
}
