/* The DND (differentiable neural dictionary) spatial memory of GTMSM: an
 * append-only store of (key, value) pairs, key = the agent's state mean (S),
 * value = a frame latent's mean and log-variance (V), with exact K-nearest-key
 * queries. Entries are numbered by insertion order and never removed one by one.
 *
 * Queries use a kd-tree over the first entries plus a brute-force scan of the
 * "tail" inserted since the tree was last built; dnd_insert rebuilds the tree
 * when the tail grows too long, so dnd_query never writes and concurrent
 * queries are safe while no thread inserts. Results are sorted by ascending
 * (squared distance, index); dnd_query and dnd_query_brute return bit-identical
 * results. */
#ifndef GTMSM_MODEL_DND_H
#define GTMSM_MODEL_DND_H

#include <stddef.h>
#include <stdint.h>

/* Largest supported key and value sizes (the kd-tree keeps per-dimension
 * scratch on the stack; a value is at most a few hundred floats in practice).
 * 64: a landmark model's reverse memory is keyed by frame latents (Z <= 64). */
#define DND_MAX_S 64
#define DND_MAX_V 65536

typedef struct dnd dnd;

/* Returns a new empty memory for keys of S floats (1..DND_MAX_S) and values of
 * V floats (0..DND_MAX_V); caller frees with dnd_free. NULL on bad sizes or
 * out of memory, with a message in err (may be NULL). */
dnd *dnd_new(int S, int V, char *err, size_t errlen);
/* Frees d and everything it owns; d may be NULL. */
void dnd_free(dnd *d);

int dnd_key_size(const dnd *d);   /* S */
int dnd_value_size(const dnd *d); /* V */

/* Caps the number of entries at max (0: no cap other than INT_MAX, since
 * indices are returned as int). GTMSM_EINVAL if max < dnd_size(d). */
int dnd_set_max_size(dnd *d, size_t max);

/* Appends (key, value), both borrowed and copied: key (S), value (V; may be
 * NULL when V == 0). Amortised O(1); may rebuild the kd-tree. Returns 0,
 * GTMSM_ENAN (a non-finite key or value element), GTMSM_ERANGE (the memory is
 * full) or GTMSM_ENOMEM; on any error d is unchanged. */
int dnd_insert(dnd *d, const float *key, const float *value);

/* Number of entries. */
size_t dnd_size(const dnd *d);
/* Number of entries covered by the kd-tree (the rest are the scanned tail). */
size_t dnd_indexed_size(const dnd *d);
/* Borrowed pointers to entry i's key (S) and value (V), i < dnd_size(d);
 * valid until the next dnd_insert, dnd_clear or dnd_free. */
const float *dnd_key(const dnd *d, size_t i);
const float *dnd_value(const dnd *d, size_t i);
/* Removes every entry, keeping the allocated capacity and the max size. */
void dnd_clear(dnd *d);
/* Keeps entries [0, n) and forgets the rest (no-op if n >= size). Cannot fail:
 * it drops the kd-tree when the tree covers dropped entries (queries stay
 * exact by scanning until the next rebuild). */
void dnd_truncate(dnd *d, size_t n);
/* Builds the kd-tree over all entries now (even small memories), so later
 * queries scan no tail. Returns 0 or GTMSM_ENOMEM (the old tree is kept and
 * queries stay exact). */
int dnd_reindex(dnd *d);

/* The K (>= 0) nearest entries to q (S) by Euclidean distance: fills idx_out (K)
 * with entry indices and d2_out (K) with squared distances, sorted by ascending
 * (d2, index), and returns the number found, min(K, dnd_size(d)); slots past
 * it get index -1 and d2 +INFINITY. Returns GTMSM_EINVAL for K < 0 and
 * GTMSM_ENAN for a non-finite q. Reads d only: safe to call from several
 * threads at once while nothing modifies d. */
int dnd_query(const dnd *d, const float *q, int K, int *idx_out, float *d2_out);
/* The same contract and bit-identical results by a linear scan of all entries
 * (the reference for dnd_query, and faster for tiny memories). */
int dnd_query_brute(const dnd *d, const float *q, int K, int *idx_out, float *d2_out);
/* dnd_query for N queries q (N, S), filling idx (N, K) and d2 (N, K). Returns
 * the number found per query, or a negative code (the first failing query's;
 * rows before it are filled). */
int dnd_query_many(const dnd *d, const float *q, int N, int K, int *idx, float *d2);

/* Serialises d into a new buffer *buf (caller frees with free()) of *len bytes:
 * a 32-byte little-endian header (magic "GTMSMDND", u32 version, u32 S, u32 V,
 * u32 CRC-32 of every other byte, u64 n) followed by keys (n, S) and values
 * (n, V) as little-endian float32. The max size and the tree are not stored.
 * Returns 0 or GTMSM_ENOMEM (then *buf is NULL). */
int dnd_serialize(const dnd *d, uint8_t **buf, size_t *len);
/* Parses buf (len bytes, borrowed) into a new memory *out (caller frees with
 * dnd_free), indexed for queries. Rejects, with GTMSM_EFORMAT and a message, a
 * short buffer, bad magic, an unknown version, sizes out of range, a length
 * that does not match the header, a checksum mismatch; GTMSM_ENAN for
 * non-finite keys or values; GTMSM_ENOMEM. On error *out is NULL. */
int dnd_deserialize(const uint8_t *buf, size_t len, dnd **out, char *err, size_t errlen);

#endif
