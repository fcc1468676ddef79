/* libFuzzer: the CMS EnvelopedData reader on protected settings, decrypting with a fixed
 * RSA-1024 test key (small, so each run is fast). The seeds in corpus/cms are encrypted to
 * it, so mutations reach the recipient match, the key unwrap and the content decryption.
 * This key protects nothing: it exists only here. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvvm/cms.h"
#include "kvvm/fileio.h"
#include "kvvm/log.h"
#include "kvvm/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char crt_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB/DCCAWWgAwIBAgIUTOquDuBZt2GslLCPAPjZNNll+ZswDQYJKoZIhvcNAQEL\n"
    "BQAwDzENMAsGA1UEAwwEZnV6ejAgFw0yNjExMjQyMjEzMjRaGA8yMTI2MTAzMTIy\n"
    "MTMyNFowDzENMAsGA1UEAwwEZnV6ejCBnzANBgkqhkiG9w0BAQEFAAOBjQAwgYkC\n"
    "gYEAwq2eZtZ1+V1PLvCs/ltY+B2o2mhqef1IVslH7p5V7U35zdFkbXLOU8ryO8DM\n"
    "UeW5Uc/HRfIzZj23HMirTTQq+1yIj9cLR8f+hUh2TNf7zEMlqNUC//YghsaEZlUt\n"
    "0l9u+k6ga+0JqT6KDrL8eDKazK2ZkuifkNqaY3s7iH7eAusCAwEAAaNTMFEwHQYD\n"
    "VR0OBBYEFI5eLM5bNzDWSNsqj6E95ky9W1B4MB8GA1UdIwQYMBaAFI5eLM5bNzDW\n"
    "SNsqj6E95ky9W1B4MA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADgYEA\n"
    "kX4uhaNbAGCnRizgeASnedJZSQxjLjoEppADlYeaasCXfF2oPqvAs+EUV+MSKz7l\n"
    "Ybcnf9WI4wpzfECy01oP4o1uPHckgmNgPa2tndrmZufUra3TuZ0q4/1wIr2bn/+K\n"
    "5tCV0xfxmuJHldi+bJv14BpLqRUWkhBMKhN0Q3PafeE=\n"
    "-----END CERTIFICATE-----\n";

static const char key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICeAIBADANBgkqhkiG9w0BAQEFAASCAmIwggJeAgEAAoGBAMKtnmbWdfldTy7w\n"
    "rP5bWPgdqNpoann9SFbJR+6eVe1N+c3RZG1yzlPK8jvAzFHluVHPx0XyM2Y9txzI\n"
    "q000KvtciI/XC0fH/oVIdkzX+8xDJajVAv/2IIbGhGZVLdJfbvpOoGvtCak+ig6y\n"
    "/HgymsytmZLon5DammN7O4h+3gLrAgMBAAECgYBuBAe8Pf41idGxyTk6FQ1WSgye\n"
    "QNvLTKOQx/bqlnggvywob+i9IWAQYmQ5+F5++b+cyDrpAFKjuMS+c3i7DHwsylsf\n"
    "0j6jy0VDSeCvl5K2lpO8H4mxnJIJB0kJsImWQ8wqtfmieR+r2a0Pz2hSVAKAHgE0\n"
    "svFflc2WwEgk+PGeQQJBAP3SsakNpwyBtKIL7/vbv8NSWpiclkB1Z5K2RXO64bDL\n"
    "v/8kzj2enRDzjCqxMxSJhSbSCcrWIJI7yg0RpM1dWtkCQQDEWRBFD3mRiXz2kcec\n"
    "KFstxoNhxMUvDIuMfPj4+6vwEME/1M7MS9pfkhNooqDMajmBS7u9f+AZm3plPZ86\n"
    "PEljAkEAwzCpitWC5u0/2XXQoSAGQdAs9ztDmGIwufQNSMgoEus8xJqrN1uocYa4\n"
    "/YOzQlHW4VmYSjGMbqgn4xD0aTEnUQJBAL+vp5eUZP21eR8K8RG9wE4vKGKRhGPL\n"
    "Xo14EGSa5p/G67MSYhXG09lLtdEIO+10otFci1uUdMbrKBGgmEt1QbsCQQCk3PuX\n"
    "RuTWpoy+18pm0req8Po0hXMAtCR/H4RVQSv8baguCBBqkABMb6hjim/ut/oVtbyd\n"
    "ss8Qqhn5oNi+sd5u\n"
    "-----END PRIVATE KEY-----\n";

static char dir[] = "/tmp/kvvm-fuzz-cms.XXXXXX", *crt_path, *key_path;

static void cleanup(void)
{
  unlink(crt_path);
  unlink(key_path);
  rmdir(dir);
}

/* The files kvvm_cms_decrypt reads, written once into a fresh folder. */
static int setup(void)
{
  if (!mkdtemp(dir))
    return -1;
  crt_path = kvvm_path_join(dir, "fuzz.crt");
  key_path = kvvm_path_join(dir, "fuzz.prv");
  kvvm_log_set_stderr_level(KVVM_LOG_ERR + 1);
  atexit(cleanup);
  if (kvvm_file_write_atomic(crt_path, crt_pem, strlen(crt_pem), 0600) != KVVM_OK ||
      kvvm_file_write_atomic(key_path, key_pem, strlen(key_pem), 0600) != KVVM_OK)
    return -1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!crt_path && setup() != 0)
    abort();
  unsigned char *plain = NULL;
  size_t plain_len = 0;
  char why[256];
  if (kvvm_cms_decrypt(data, size, crt_path, key_path, &plain, &plain_len, why,
                       sizeof(why)) == KVVM_OK)
    kvvm_free_secret(plain, plain_len);
  return 0;
}
