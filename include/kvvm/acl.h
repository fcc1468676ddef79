/* Read grants (design.md, Store mapping on Linux): the accounts and groups a certificate's
 * settings name, resolved on this machine. What they become (POSIX ACL entries on Linux)
 * is the platform's: the descriptor-level half is posix/acl_int.h, implemented by
 * acl_linux.c. */
#ifndef KVVM_ACL_H
#define KVVM_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"
#include "kvvm/settings.h"

/* One user or group that settings grant read to. */
struct kvvm_principal {
  bool group;
  unsigned id;  /* uid or gid */
  char *name;
};

/* The names in cc->accounts (a user, else a group of that name) and cc->acls (user and/or
 * group), resolved here; sorted by (group, id), no repeats. A name that does not exist is
 * left out (it never widens access), named in why, and the result is KVVM_E_GRANT; *out
 * still holds the names that do exist. */
KVVM_API enum kvvm_err kvvm_acl_resolve(const struct kvvm_cert_cfg *cc,
                                        struct kvvm_principal **out, size_t *n, char *why,
                                        size_t whylen);
KVVM_API void kvvm_principals_free(struct kvvm_principal *p, size_t n);
/* "user:app1,group:web" for messages and state; a new string. */
KVVM_API char *kvvm_principals_str(const struct kvvm_principal *p, size_t n);

#endif
