/* mrseq on Linux: the file <root>/mrseq, which the agent copies to the new package folder
 * on update. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/seqno_int.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/seqno.h"

enum kvvm_err kvvm_seqno_read_mrseq(const char *root, long *out)
{
  char *path = kvvm_path_join(root, "mrseq"), *text = NULL;
  enum kvvm_err rc = kvvm_file_read(path, 64, &text, NULL);
  if (rc == KVVM_OK) {
    char *end = text + strcspn(text, " \t\r\n");
    long v = kvvm_seqno_parse(text, end);
    if (v < 0) {
      KVVM_WARN("%s holds no number; ignoring it", path);
      rc = KVVM_E_NOENT;
    } else {
      *out = v;
    }
  }
  free(text);
  free(path);
  return rc;
}

enum kvvm_err kvvm_seqno_write_mrseq(const char *root, long seq)
{
  char *path = kvvm_path_join(root, "mrseq");
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%ld", seq);
  enum kvvm_err rc = kvvm_file_write_atomic(path, buf, (size_t)n, 0600);
  free(path);
  return rc;
}
