/* Protected settings: a CMS (PKCS#7) EnvelopedData, DER, encrypted by the fabric for the
 * agent's transport certificate <Lib>/<THUMB>.crt with its key <Lib>/<THUMB>.prv (PEM).
 * Supported: key transport recipients (matched by issuer and serial number or by subject
 * key identifier) with RSA PKCS#1 v1.5 or RSAES-OAEP (SHA-1 by default, or SHA-256/384/512
 * with the same MGF1 hash, empty label); content in AES-128/192/256-CBC or DES-EDE3-CBC.
 * Only cms.c includes mbedTLS headers. */
#ifndef KVVM_CMS_H
#define KVVM_CMS_H

#include <stddef.h>
#include "kvvm/err.h"

/* Decrypt der with the certificate and key in those PEM files. On KVVM_OK *plain holds the
 * content (NUL-terminated for convenience; *plain_len excludes the NUL): it is secret, free
 * it with kvvm_free_secret(*plain, *plain_len). KVVM_E_CERT with words in why when the data
 * is corrupt, unsupported, for another certificate, or the key does not fit; KVVM_E_NOENT or
 * KVVM_E_IO when a file cannot be read. */
KVVM_API enum kvvm_err kvvm_cms_decrypt(const unsigned char *der, size_t len,
                                        const char *crt_pem_path, const char *key_pem_path,
                                        unsigned char **plain, size_t *plain_len, char *why,
                                        size_t whylen);
/* The same for the base64 text the settings carry in protectedSettings (whitespace allowed). */
KVVM_API enum kvvm_err kvvm_cms_decrypt_base64(const char *b64, size_t len,
                                               const char *crt_pem_path,
                                               const char *key_pem_path, unsigned char **plain,
                                               size_t *plain_len, char *why, size_t whylen);

#endif
