/* gtmsm's database reader (tools/gtmsm/recordings.c) knows the schema
 * versions of gtmsmd's store: when server/store.c adds a migration this
 * fails until the reader has been checked against the new schema and its
 * RECORDINGS_DB_SCHEMA_MAX raised. */
#include <stdio.h>

#include "../../../../server/store.h"
#include "../../../../tools/gtmsm/recordings.h"

int main(void) {
  int failures = 0;
  if (RECORDINGS_DB_SCHEMA_MAX != STORE_SCHEMA_VERSION) {
    fprintf(stderr, "FAIL: the reader knows schema versions up to %d, gtmsmd writes %d\n", RECORDINGS_DB_SCHEMA_MAX,
            STORE_SCHEMA_VERSION);
    failures++;
  } else {
    printf("ok: the reader knows gtmsmd's schema version %d\n", STORE_SCHEMA_VERSION);
  }
  if (RECORDINGS_DB_SCHEMA_MIN != 1) {
    fprintf(stderr, "FAIL: schema 1 (sessions, observations) is readable\n");
    failures++;
  }
  return failures ? 1 : 0;
}
