/* Unit tests for core/config: defaults, environment, flags, and every kind
 * of bad value. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "unit.h"

/* Runs config_load with a NULL-terminated env list and argv (argv[0] is
 * supplied here). */
#define MAX_ARGS 16
static config_result_t load(config_t *cfg, const char *const *env, const char *const *args,
                            char *err, size_t errlen)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)(uintptr_t) "todo-backend";
    for (; args && *args && argc < MAX_ARGS; args++)
        argv[argc++] = (char *)(uintptr_t)*args;
    argv[argc] = NULL;
    char *envp[MAX_ARGS + 1];
    int n = 0;
    for (; env && *env && n < MAX_ARGS; env++)
        envp[n++] = (char *)(uintptr_t)*env;
    envp[n] = NULL;
    err[0] = '\0';
    return config_load(cfg, envp, argc, argv, err, errlen);
}

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void check_defaults(const config_t *c)
{
    CHECK_STR_EQ(c->host, "0.0.0.0");
    CHECK_INT_EQ(c->port, 8080);
    CHECK_INT_EQ(c->log_level, LOG_INFO);
    CHECK_INT_EQ(c->log_format, LOG_FORMAT_JSON);
    CHECK(c->access_log);
    CHECK_INT_EQ(c->max_body_bytes, 1048576);
    CHECK_INT_EQ(c->max_header_bytes, 16384);
    CHECK_INT_EQ(c->max_url_bytes, 8192);
    CHECK_INT_EQ(c->max_headers, 100);
    CHECK_INT_EQ(c->max_connections, 20000);
    CHECK_INT_EQ(c->max_pipeline, 16);
    CHECK_INT_EQ(c->max_output_bytes, 1048576);
    CHECK_INT_EQ(c->header_timeout_ms, 10000);
    CHECK_INT_EQ(c->body_timeout_ms, 30000);
    CHECK_INT_EQ(c->idle_timeout_ms, 30000);
    CHECK_INT_EQ(c->shutdown_timeout_ms, 10000);
}

static void test_defaults(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, NULL, NULL, err, sizeof err), CONFIG_OK);
    check_defaults(&c);
    CHECK_STR_EQ(err, "");
    /* A NULL envp is allowed too. */
    char *argv[] = {(char *)(uintptr_t) "todo-backend", NULL};
    CHECK_INT_EQ(config_load(&c, NULL, 1, argv, err, sizeof err), CONFIG_OK);
    check_defaults(&c);
}

static void test_unrelated_env_ignored(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, ENV("PATH=/bin", "PORTX=1", "XPORT=2", "PORT", "port=3",
                              "HOSTNAME=box", "LOG_LEVELS=debug"),
                      NULL, err, sizeof err),
                 CONFIG_OK);
    check_defaults(&c);
}

static void test_env_overrides(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c,
                      ENV("HOST=127.0.0.1", "PORT=9090", "LOG_LEVEL=debug", "LOG_FORMAT=text",
                          "ACCESS_LOG=0", "MAX_BODY_BYTES=0", "MAX_HEADER_BYTES=1024",
                          "MAX_URL_BYTES=256", "MAX_HEADERS=8", "MAX_CONNECTIONS=1",
                          "MAX_PIPELINE=10000", "MAX_OUTPUT_BYTES=4096", "HEADER_TIMEOUT_MS=1",
                          "BODY_TIMEOUT_MS=3600000", "IDLE_TIMEOUT_MS=86400000",
                          "SHUTDOWN_TIMEOUT_MS=0"),
                      NULL, err, sizeof err),
                 CONFIG_OK);
    CHECK_STR_EQ(c.host, "127.0.0.1");
    CHECK_INT_EQ(c.port, 9090);
    CHECK_INT_EQ(c.log_level, LOG_DEBUG);
    CHECK_INT_EQ(c.log_format, LOG_FORMAT_TEXT);
    CHECK(!c.access_log);
    CHECK_INT_EQ(c.max_body_bytes, 0);
    CHECK_INT_EQ(c.max_header_bytes, 1024);
    CHECK_INT_EQ(c.max_url_bytes, 256);
    CHECK_INT_EQ(c.max_headers, 8);
    CHECK_INT_EQ(c.max_connections, 1);
    CHECK_INT_EQ(c.max_pipeline, 10000);
    CHECK_INT_EQ(c.max_output_bytes, 4096);
    CHECK_INT_EQ(c.header_timeout_ms, 1);
    CHECK_INT_EQ(c.body_timeout_ms, 3600000);
    CHECK_INT_EQ(c.idle_timeout_ms, 86400000);
    CHECK_INT_EQ(c.shutdown_timeout_ms, 0);
}

static void test_env_bool_and_choice_spellings(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, ENV("ACCESS_LOG=false"), NULL, err, sizeof err), CONFIG_OK);
    CHECK(!c.access_log);
    CHECK_INT_EQ(load(&c, ENV("ACCESS_LOG=true"), NULL, err, sizeof err), CONFIG_OK);
    CHECK(c.access_log);
    CHECK_INT_EQ(load(&c, ENV("ACCESS_LOG=1"), NULL, err, sizeof err), CONFIG_OK);
    CHECK(c.access_log);
    static const char *const levels[] = {"LOG_LEVEL=debug", "LOG_LEVEL=info", "LOG_LEVEL=warn",
                                         "LOG_LEVEL=error"};
    for (int i = 0; i < 4; i++) {
        const char *env[] = {levels[i], NULL};
        CHECK_INT_EQ(load(&c, env, NULL, err, sizeof err), CONFIG_OK);
        CHECK_INT_EQ(c.log_level, i);
        /* the config numbering is log_level_t's */
        CHECK_INT_EQ(log_level_parse(levels[i] + strlen("LOG_LEVEL=")), i);
    }
    CHECK_INT_EQ(log_level_parse("verbose"), -1);
    CHECK_INT_EQ(load(&c, ENV("PORT=0"), NULL, err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(c.port, 0);
    CHECK_INT_EQ(load(&c, ENV("PORT=65535"), NULL, err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(c.port, 65535);
}

static void test_flags_override_env(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, ENV("PORT=9090"), ARGS("--port=1"), err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(c.port, 1);
    CHECK_INT_EQ(load(&c, ENV("PORT=9090"), ARGS("--port", "1"), err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(c.port, 1);
    CHECK_INT_EQ(load(&c, ENV("HOST=10.0.0.1", "LOG_FORMAT=text"),
                      ARGS("--host=::1", "--log-format", "json", "--max-body-bytes=5",
                           "--access-log", "0", "--shutdown-timeout-ms=7"),
                      err, sizeof err),
                 CONFIG_OK);
    CHECK_STR_EQ(c.host, "::1");
    CHECK_INT_EQ(c.log_format, LOG_FORMAT_JSON);
    CHECK_INT_EQ(c.max_body_bytes, 5);
    CHECK(!c.access_log);
    CHECK_INT_EQ(c.shutdown_timeout_ms, 7);
    /* The last of repeated flags wins. */
    CHECK_INT_EQ(load(&c, NULL, ARGS("--port=1", "--port=2"), err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(c.port, 2);
    /* An empty HOST is a string like any other. */
    CHECK_INT_EQ(load(&c, NULL, ARGS("--host="), err, sizeof err), CONFIG_OK);
    CHECK_STR_EQ(c.host, "");
}

/* Expects CONFIG_ERROR with a one-line message containing each needle. */
static void check_error(const char *const *env, const char *const *args, const char *needle,
                        const char *needle2)
{
    config_t c;
    char err[256];
    config_result_t r = load(&c, env, args, err, sizeof err);
    if (r != CONFIG_ERROR) {
        const char *e = env && env[0] ? env[0] : "-", *a = args && args[0] ? args[0] : "-";
        unit__diag_bytes("env[0]", e, strlen(e));
        unit__diag_bytes("args[0]", a, strlen(a));
        CHECK_INT_EQ(r, CONFIG_ERROR);
    }
    if (!strstr(err, needle) || (needle2 && !strstr(err, needle2))) {
        unit__diag_bytes("err", err, strlen(err));
        unit__diag_bytes("want", needle, strlen(needle));
        FAIL("error message does not name the setting");
    }
    CHECK(strchr(err, '\n') == NULL);
}

static void test_bad_port_values(void)
{
    check_error(ENV("PORT=abc"), NULL, "PORT", "abc");
    check_error(ENV("PORT=70000"), NULL, "PORT", "70000");
    check_error(ENV("PORT=65536"), NULL, "PORT", NULL);
    check_error(ENV("PORT=-1"), NULL, "PORT", NULL);
    check_error(ENV("PORT= 1"), NULL, "PORT", NULL);
    check_error(ENV("PORT=1 "), NULL, "PORT", NULL);
    check_error(ENV("PORT=1x"), NULL, "PORT", NULL);
    check_error(ENV("PORT=+1"), NULL, "PORT", NULL);
    check_error(ENV("PORT="), NULL, "PORT", NULL);
    check_error(ENV("PORT=0x10"), NULL, "PORT", NULL);
    check_error(ENV("PORT=1.5"), NULL, "PORT", NULL);
    check_error(ENV("PORT=99999999999999999999999"), NULL, "PORT", NULL);
}

/* strtol() skips any leading white space; parse_integer() rejects only a
 * leading ' ', so a tab or newline before the number is accepted. */
static void test_bad_port_leading_tab_or_newline(void)
{
    check_error(ENV("PORT=\t1"), NULL, "PORT", NULL);
    check_error(ENV("PORT=\n1"), NULL, "PORT", NULL);
}

static void test_bad_other_values(void)
{
    check_error(ENV("LOG_FORMAT=xml"), NULL, "LOG_FORMAT", "xml");
    check_error(ENV("LOG_FORMAT=JSON"), NULL, "LOG_FORMAT", NULL);
    check_error(ENV("LOG_LEVEL=verbose"), NULL, "LOG_LEVEL", NULL);
    check_error(ENV("ACCESS_LOG=yes"), NULL, "ACCESS_LOG", NULL);
    check_error(ENV("ACCESS_LOG="), NULL, "ACCESS_LOG", NULL);
    check_error(ENV("MAX_HEADERS=7"), NULL, "MAX_HEADERS", NULL);
    check_error(ENV("MAX_BODY_BYTES=-5"), NULL, "MAX_BODY_BYTES", NULL);
    check_error(ENV("MAX_BODY_BYTES=67108865"), NULL, "MAX_BODY_BYTES", NULL); /* 64 MiB + 1 */
    check_error(ENV("MAX_HEADER_BYTES=1023"), NULL, "MAX_HEADER_BYTES", NULL);
    check_error(ENV("MAX_URL_BYTES=255"), NULL, "MAX_URL_BYTES", NULL);
    check_error(ENV("HEADER_TIMEOUT_MS=0"), NULL, "HEADER_TIMEOUT_MS", NULL);
    check_error(ENV("IDLE_TIMEOUT_MS=86400001"), NULL, "IDLE_TIMEOUT_MS", NULL);
}

static void test_host_length(void)
{
    char env_ok[8 + 255 + 1] = "HOST=";
    memset(env_ok + 5, 'h', 255);
    env_ok[5 + 255] = '\0';
    const char *env1[] = {env_ok, NULL};
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, env1, NULL, err, sizeof err), CONFIG_OK);
    CHECK_INT_EQ(strlen(c.host), 255);

    char env_long[8 + 300 + 1] = "HOST=";
    memset(env_long + 5, 'h', 300);
    env_long[5 + 300] = '\0';
    const char *env2[] = {env_long, NULL};
    check_error(env2, NULL, "HOST", NULL);

    char flag_long[16 + 300 + 1] = "--host=";
    memset(flag_long + 7, 'h', 300);
    flag_long[7 + 300] = '\0';
    check_error(NULL, ARGS(flag_long), "HOST", NULL);
}

static void test_bad_flag_values(void)
{
    check_error(NULL, ARGS("--port=abc"), "PORT", NULL);
    check_error(NULL, ARGS("--port", "70000"), "PORT", NULL);
    check_error(NULL, ARGS("--port="), "PORT", NULL);
    check_error(NULL, ARGS("--log-format=xml"), "LOG_FORMAT", NULL);
    check_error(NULL, ARGS("--access-log=yes"), "ACCESS_LOG", NULL);
    /* a good environment value does not rescue a bad flag */
    check_error(ENV("PORT=80"), ARGS("--port=-1"), "PORT", NULL);
    /* a bad environment value is reported even when a flag would override it */
    check_error(ENV("PORT=x"), ARGS("--port=80"), "PORT", NULL);
}

static void test_unknown_and_malformed_flags(void)
{
    check_error(NULL, ARGS("--nope=1"), "--nope", NULL);
    check_error(NULL, ARGS("--nope"), "--nope", NULL);
    check_error(NULL, ARGS("--PORT=1"), "--PORT", NULL);
    check_error(NULL, ARGS("--port_x=1"), "--port_x", NULL);
    check_error(NULL, ARGS("--max_body_bytes=1"), "--max_body_bytes", NULL);
    check_error(NULL, ARGS("--"), "--", NULL);
    check_error(NULL, ARGS("--=1"), "--=1", NULL);
    check_error(NULL, ARGS("serve"), "serve", NULL);
    check_error(NULL, ARGS("-p", "1"), "-p", NULL);
    /* a flag without its value */
    check_error(NULL, ARGS("--port"), "--port", NULL);
    check_error(NULL, ARGS("--host=x", "--log-level"), "--log-level", NULL);
}

static void test_help_and_version(void)
{
    config_t c;
    char err[256];
    CHECK_INT_EQ(load(&c, NULL, ARGS("--help"), err, sizeof err), CONFIG_HELP);
    CHECK_INT_EQ(load(&c, NULL, ARGS("-h"), err, sizeof err), CONFIG_HELP);
    CHECK_INT_EQ(load(&c, NULL, ARGS("--version"), err, sizeof err), CONFIG_VERSION);
    CHECK_INT_EQ(load(&c, NULL, ARGS("--port=1", "--help"), err, sizeof err), CONFIG_HELP);
    CHECK_INT_EQ(load(&c, NULL, ARGS("--version", "--bogus"), err, sizeof err), CONFIG_VERSION);
    /* arguments are read in order: an error before --help wins */
    CHECK_INT_EQ(load(&c, NULL, ARGS("--bogus", "--help"), err, sizeof err), CONFIG_ERROR);
}

static void test_small_error_buffer(void)
{
    config_t c;
    char err[12];
    memset(err, 'X', sizeof err);
    CHECK_INT_EQ(load(&c, ENV("LOG_FORMAT=xml"), NULL, err, 8), CONFIG_ERROR);
    CHECK_INT_EQ(strlen(err), 7);
    CHECK_INT_EQ(err[8], 'X'); /* nothing past errlen */
}

static void test_print_help(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    config_print_help(f, "todo-backend");
    long size = ftell(f);
    CHECK(size > 0);
    rewind(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    static const char *const names[] = {
        "HOST", "PORT", "LOG_LEVEL", "LOG_FORMAT", "ACCESS_LOG", "MAX_BODY_BYTES",
        "MAX_HEADER_BYTES", "MAX_URL_BYTES", "MAX_HEADERS", "MAX_CONNECTIONS",
        "MAX_PIPELINE", "MAX_OUTPUT_BYTES", "HEADER_TIMEOUT_MS", "BODY_TIMEOUT_MS",
        "IDLE_TIMEOUT_MS", "SHUTDOWN_TIMEOUT_MS", "--port", "--host", "--log-format",
        "--max-body-bytes", "--access-log", "--shutdown-timeout-ms", "todo-backend",
        "--help", "--version", "8080", "1048576",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(text, names[i])) {
            unit__diag("#   missing: %s\n", names[i]);
            FAIL("help does not list a setting");
        }
    }
}

UNIT_MAIN(
    UNIT_TEST(test_defaults),
    UNIT_TEST(test_unrelated_env_ignored),
    UNIT_TEST(test_env_overrides),
    UNIT_TEST(test_env_bool_and_choice_spellings),
    UNIT_TEST(test_flags_override_env),
    UNIT_TEST(test_bad_port_values),
    UNIT_TEST(test_bad_port_leading_tab_or_newline),
    UNIT_TEST(test_bad_other_values),
    UNIT_TEST(test_host_length),
    UNIT_TEST(test_bad_flag_values),
    UNIT_TEST(test_unknown_and_malformed_flags),
    UNIT_TEST(test_help_and_version),
    UNIT_TEST(test_small_error_buffer),
    UNIT_TEST(test_print_help),
)
