/* POSIX ACLs on the files and folders the store owns (design.md, Store mapping on Linux):
 * the resolved principals (kvvm/acl.h) become read entries on each file kvvm owns and
 * traverse-only entries on the folders above them. The Linux implementation is acl_linux.c;
 * it writes the system.posix_acl_access attribute itself (no libacl). Folder descriptors
 * come from the store's safe walk (O_NOFOLLOW, checked). Used by the POSIX store and hook
 * files and by tests/unit/test_acl.c. */
#ifndef KVVM_ACL_INT_H
#define KVVM_ACL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include "kvvm/acl.h"

/* The exact ACL of a file kvvm owns: owner rw-, each principal r--, nobody else anything
 * (with no principals: a plain 0600 file). */
KVVM_API enum kvvm_err kvvm_acl_set_file(int fd, const struct kvvm_principal *p, size_t n,
                                         char *why, size_t whylen);
/* kvvm_acl_set_file for a caller that has just fstat'ed fd (st: its mode now). */
KVVM_API enum kvvm_err kvvm_acl_set_file_st(int fd, const struct stat *st,
                                            const struct kvvm_principal *p, size_t n,
                                            char *why, size_t whylen);
/* The exact ACL of a folder kvvm owns whole (a fileLayout version folder): owner rwx, each
 * principal --x (it reads the files by name, lists nothing), nobody else anything. */
KVVM_API enum kvvm_err kvvm_acl_set_dir(int fd, const struct kvvm_principal *p, size_t n,
                                        char *why, size_t whylen);
/* Let p traverse the folder: nothing when it already can (mode bits, its groups, existing
 * entries); otherwise add an --x entry for it, and x to the mask when the mask lacks it.
 * Then the entries the old mask kept from x lose their x, so no one else gains anything;
 * *trimmed (a new string, or NULL) names them for kvvm_acl_dir_remove_traverse.
 * *added tells whether an entry was added, *mask_added which mask bits were. An existing
 * entry for p that denies traverse is left alone and reported (KVVM_E_GRANT). */
KVVM_API enum kvvm_err kvvm_acl_dir_add_traverse(int dfd, const struct kvvm_principal *p,
                                                 bool *added, unsigned *mask_added,
                                                 char **trimmed, char *why, size_t whylen);
/* Undo an added --x entry (left alone if someone changed it since). With mask_bits (when
 * the last entry kvvm added there goes): clear them from the mask and give back the x of
 * the entries in trimmed. An ACL left with no named entries becomes plain mode bits. */
KVVM_API enum kvvm_err kvvm_acl_dir_remove_traverse(int dfd, bool group, unsigned id,
                                                    unsigned mask_bits, const char *trimmed,
                                                    char *why, size_t whylen);
/* True when a user other than root could write into or replace what fd names: owned by
 * another user, group- or world-writable (world-writable sticky folders such as /tmp are
 * allowed when sticky_ok), or an ACL entry granting write. why says which. */
KVVM_API bool kvvm_acl_writable_by_others(int fd, const struct stat *st, bool sticky_ok,
                                          char *why, size_t whylen);
/* Remove ACLs a new folder inherited from a default ACL above it. */
KVVM_API enum kvvm_err kvvm_acl_strip(int fd);

#endif
