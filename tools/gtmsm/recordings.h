/* Recorded episodes for train and eval: NDJSON files (what `gtmsm gen`
 * prints and the service accepts) and the raw observations a gtmsmd stored
 * in its SQLite file, loaded into one compact set (frames as bytes).
 *
 * The environment (imagenav or maze3d) names the actions; the frame shape
 * comes from the data and must be the same in every recording. */
#ifndef GTMSM_TOOLS_RECORDINGS_H
#define GTMSM_TOOLS_RECORDINGS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "model/eval_recorded.h"
#include "model/gtmsm.h"

/* A recording's path or session is missing or cannot be read (exit 2);
 * malformed data is GTMSM_EFORMAT (exit 1). */
enum { RECORDINGS_ENOENT = -50 };

/* The database schema versions this reader knows (server/store_sqlite.c's
 * migrations: 1 sessions and observations, 2 adds the memory columns, which
 * are not read here; 3 adds the session leases, 4 a session's own TTL, not
 * read either; 5 stores the observations in arrival order with a (sid, t)
 * index: the same columns and queries). */
#define RECORDINGS_DB_SCHEMA_MIN 1
#define RECORDINGS_DB_SCHEMA_MAX 5

typedef struct {
  int A;                                   /* actions of the environment */
  char names[GTMSM_MAX_ACTIONS][32];       /* their names, as in the model */
  int maze3d;                              /* truth keys: x, y, heading, d_* (else col, row) */
} recordings_env;

typedef struct {
  int n;              /* recordings */
  eval_recording *v;  /* (n); their arrays are owned here */
  char **names;       /* (n): the file, or "DB session ID" for messages */
  char **session;     /* (n): the session id, NULL for a file */
  int H, W, C;        /* frame shape (0 until the first frame) */
  int all_truth;      /* every recording has the truth evaluation needs */
  int all_disp;       /* every recording has d_forward, d_left, d_heading */
} recordings;

/* The environment's actions: "imagenav" or "maze3d"; -1 for another name. */
int recordings_env_init(recordings_env *env, const char *name);

/* Appends the NDJSON file path to r. Lines are {"t", "action", "frame"}
 * (t consecutive, action a name or an index, frame a base64 PNG) with
 * optional "truth"; blank lines are skipped. At most max_steps lines are
 * read (-1: all). Returns 0, RECORDINGS_ENOENT (cannot open) or
 * GTMSM_EFORMAT / GTMSM_ENOMEM; the message names the file and line. */
int recordings_load_ndjson(recordings *r, const recordings_env *env, const char *path, long max_steps,
                           char *err, size_t errlen);

/* One session to read from a database: its id and how many steps (-1: all). */
typedef struct {
  const char *id;
  long steps;
} recordings_session;

/* Appends sessions of the gtmsmd database path (opened read-only, in one
 * read transaction) to r: the listed ones (n > 0), or every session in id
 * order (n == 0), in either case only those created with the model named
 * model (NULL: any; a listed session of another model is an error). Frames are H*W*3 bytes (square frames: the size comes from
 * the blob), actions indices into env. r->session[i] and r->v[i].n then say
 * what was read, so a checkpoint can name it. Returns 0, RECORDINGS_ENOENT
 * (no such file, no such session) or GTMSM_EFORMAT (not a gtmsmd database,
 * an unknown schema version, a gap in t, a frame of another size, an action
 * out of range: session and t in the message). */
int recordings_load_db(recordings *r, const recordings_env *env, const char *path, const recordings_session *listed,
                       int n, const char *model, char *err, size_t errlen);

void recordings_free(recordings *r);

/* Adds to an eval summary j (borrowed) "recordings": the names, and "truth":
 * whether the metrics that need it were computed. */
void recordings_json_note(json_t *j, const recordings *r);

#endif
