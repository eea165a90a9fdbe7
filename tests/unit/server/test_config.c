/* The configuration table (server/config.c): defaults as documented, env
 * variables named GTMSM_<NAME>, flags in both forms winning over env, size
 * suffixes, ranges and enum choices validated with messages naming the
 * option, unknown options refused, --help listing every option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testlib.h"

static const char *const *g_env; /* NAME=value pairs for fake_env */

static const char *fake_env(const char *name) {
  for (int i = 0; g_env && g_env[i]; i += 2)
    if (strcmp(g_env[i], name) == 0) return g_env[i + 1];
  return NULL;
}

static int load(server_config *c, const char *const *env, int argc, char **argv, char *err) {
  g_env = env;
  return config_load(c, argc, argv, fake_env, NULL, NULL, err, 256);
}

static void test_defaults(void) {
  server_config c;
  char err[256] = "";
  char *argv[] = {"gtmsmd"};
  CHECK(load(&c, NULL, 1, argv, err) == 0, "defaults load: %s", err);
  CHECK(strcmp(c.models, "./models") == 0 && strcmp(c.db, "./data/gtmsm.db") == 0 &&
            strcmp(c.listen, "127.0.0.1:8080") == 0, "the documented defaults: %s %s %s", c.models, c.db,
        c.listen);
  CHECK(c.max_actions == 1024 && c.max_body == 64LL << 20 && c.synchronous == CONFIG_SYNC_FULL &&
            c.log_level == 1 && c.api_keys[0] == '\0', "limits, durability and auth defaults");
  printf("defaults: models %s, db %s, listen %s, max-actions %lld, max-body %lld, synchronous full\n",
         c.models, c.db, c.listen, c.max_actions, c.max_body);
}

static void test_precedence(void) {
  server_config c;
  char err[256] = "";
  const char *env[] = {"GTMSM_MODELS", "/m", "GTMSM_MAX_BODY", "2M", "GTMSM_LISTEN", ":9000",
                       "GTMSM_SYNCHRONOUS", "normal", "GTMSM_BIN", "ignored", NULL};
  char *argv[] = {"gtmsmd", "--max-body", "3k", "--db=/tmp/x.db", "--log-level", "debug"};
  CHECK(load(&c, env, 6, argv, err) == 0, "load: %s", err);
  CHECK(strcmp(c.models, "/m") == 0 && strcmp(c.listen, ":9000") == 0, "env sets options");
  CHECK(c.max_body == 3072, "the flag wins over the env (3k = 3072, got %lld)", c.max_body);
  CHECK(strcmp(c.db, "/tmp/x.db") == 0 && c.log_level == 0 && c.synchronous == CONFIG_SYNC_NORMAL,
        "--name=value and enum values");
  char name[64];
  config_env_name(name, sizeof name, "max-body");
  CHECK(strcmp(name, "GTMSM_MAX_BODY") == 0, "env name of max-body: %s", name);
  printf("precedence: flag > env > default; GTMSM_* variables not in the table are ignored\n");
}

static void test_errors(void) {
  struct {
    const char *flag, *value, *want;
  } cases[] = {
      {"--nope", "1", "unknown option --nope"},
      {"--max-body", "12q", "--max-body: '12q' is not a byte size"},
      {"--max-body", "1", "1024..17179869184"},
      {"--threads", "-1", "--threads: '-1' is not an integer in 0..256"},
      {"--threads", "4x", "not an integer"},
      {"--threads", "", "not an integer"},
      {"--max-actions", "99999999999999999999", "not an integer"},
      {"--log-level", "loud", "not one of debug|info|warn|error"},
      {"--synchronous", "FULL", "not one of full|normal|off"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    server_config c;
    char err[256] = "";
    char *argv[] = {"gtmsmd", (char *)cases[i].flag, (char *)cases[i].value};
    int rc = load(&c, NULL, 3, argv, err);
    CHECK(rc != 0 && strstr(err, cases[i].want), "%s %s: rc %d, message '%s' lacks '%s'", cases[i].flag,
          cases[i].value, rc, err, cases[i].want);
  }
  server_config c;
  char err[256] = "";
  char *missing[] = {"gtmsmd", "--db"};
  CHECK(load(&c, NULL, 2, missing, err) != 0 && strstr(err, "--db needs a value"), "missing value: %s", err);
  char *stray[] = {"gtmsmd", "serve"};
  CHECK(load(&c, NULL, 2, stray, err) != 0 && strstr(err, "unexpected argument"), "stray: %s", err);
  const char *env[] = {"GTMSM_TIMEOUT", "0", NULL};
  char *argv[] = {"gtmsmd"};
  CHECK(load(&c, env, 1, argv, err) != 0 && strstr(err, "(from GTMSM_TIMEOUT)"), "bad env names its variable: %s",
        err);
  CHECK(config_set(&c, "max-frames", "0", err, sizeof err) != 0, "max-frames 0 refused");
  CHECK(config_set(&c, "max-frames", "1", err, sizeof err) == 0 && c.max_frames == 1, "max-frames 1");
  char long_value[CONFIG_STR_MAX + 8];
  memset(long_value, 'x', sizeof long_value - 1);
  long_value[sizeof long_value - 1] = '\0';
  CHECK(config_set(&c, "db", long_value, err, sizeof err) != 0, "an over-long string refused");
  printf("errors: %zu bad values refused with the option and its range or choices\n",
         sizeof cases / sizeof *cases);
}

static void test_help(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  config_print_help(f, "gtmsmd");
  fclose(f);
  int listed = 0;
  for (int i = 0; i < config_count(); i++) {
    char flag[80], env[64], v[CONFIG_STR_MAX];
    snprintf(flag, sizeof flag, "--%s ", config_name(i));
    config_env_name(env, sizeof env, config_name(i));
    listed += strstr(buf, flag) && strstr(buf, env);
    server_config c;
    config_defaults(&c);
    config_value_text(&c, i, v, sizeof v);
    CHECK(config_set(&c, config_name(i), v, NULL, 0) == 0, "the default of %s (%s) reparses", config_name(i), v);
  }
  CHECK(listed == config_count(), "--help lists %d of %d options with their env variables", listed,
        config_count());
  printf("--help lists all %d options; every default reparses\n", config_count());
  free(buf);
}

int main(void) {
  test_defaults();
  test_precedence();
  test_errors();
  test_help();
  return test_finish("test_config");
}
