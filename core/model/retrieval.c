/* Retrieval in training: brute-force kNN over mapped keys (with `skip` for
 * the leave-one-out term) and the backward of the squared distances. Serving
 * queries the DND's kd-tree (dnd.c), which returns bit-identical neighbours. */
#include "model/gtmsm_internal.h"

int gtmsm_knn_brute(const float *keys, int n, int KS, const float *q, int K, int skip, int *idx,
                    float *d2) {
  int found = 0;
  for (int i = 0; i < n; i++) {
    if (i == skip) continue;
    float d = 0;
    for (int k = 0; k < KS; k++) {
      float r = q[k] - keys[(size_t)i * KS + k];
      d += r * r;
    }
    /* insertion into the sorted top-K; equal distances keep index order */
    if (found == K && !(d < d2[K - 1])) continue;
    int j = found < K ? found++ : K - 1;
    while (j > 0 && d < d2[j - 1]) {
      d2[j] = d2[j - 1];
      idx[j] = idx[j - 1];
      j--;
    }
    d2[j] = d;
    idx[j] = i;
  }
  return found;
}

void gtmsm_knn_d2_backward(const float *keys, int KS, const int *q_row, const int *idx,
                           const float *dd2, int R, int K, float *dkeys) {
  for (int r = 0; r < R; r++) {
    const float *kt = keys + (size_t)q_row[r] * KS;
    for (int j = 0; j < K; j++) {
      float g = dd2[(size_t)r * K + j];
      const float *ki = keys + (size_t)idx[(size_t)r * K + j] * KS;
      for (int k = 0; k < KS; k++) {
        float diff = kt[k] - ki[k];
        dkeys[(size_t)q_row[r] * KS + k] += 2.0f * g * diff;
        dkeys[(size_t)idx[(size_t)r * K + j] * KS + k] -= 2.0f * g * diff;
      }
    }
  }
}
