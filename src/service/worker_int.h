/* What kvvmd and its pass worker say to each other (docs/worker-protocol.md): one JSON
 * document each way, versioned, so the two never share a memory layout and the same
 * exchange works on every platform. kvvmd writes a request to the worker's stdin; the
 * worker answers on its stdout. The transport is worker.h; the meaning is daemon*.c's. */
#ifndef KVVM_SERVICE_WORKER_INT_H
#define KVVM_SERVICE_WORKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "kvvm/err.h"
#include "kvvm/sync.h"

/* The format's version: a reader refuses another major version and ignores members it
 * does not know (a minor version only adds members). */
#define KVVM_WORKER_MAJOR 1
#define KVVM_WORKER_MINOR 2

/* Neither message may be larger than this (1,000 certificates make about 250 KiB). */
#define KVVM_WORKER_MSG_MAX (64u * 1024 * 1024)

enum kvvm_worker_job {
  KVVM_JOB_START_UP,  /* clear up what a killed kvvmd left: temp files, hooks due */
  KVVM_JOB_PASS,      /* sync the certificates that are due */
};

struct kvvm_worker_req {
  enum kvvm_worker_job job;
  char *root;            /* the package folder: HandlerEnvironment.json is there */
  long seq;              /* the settings to load (-1: none, start-up only) */
  char *settings_fp;     /* kvvm_worker_settings_fp of the settings kvvmd serves, or NULL */
  bool reconcile;        /* bring grants in line before the pass (new settings) */
  size_t n;              /* certificates in the settings; due and out have n entries */
  bool *due;
  struct kvvm_cert_outcome *out;  /* what kvvmd holds for each (the not due come back as is) */
};

struct kvvm_worker_ans {
  size_t changed;
  bool stopping;              /* the worker was asked to stop during the pass */
  char pass_hook_error[512];  /* the once-per-pass hooks' failure, "" when none */
  size_t n;
  struct kvvm_cert_outcome *out;
};

/* A short fingerprint of a config (its canonical JSON), so the worker can tell that the
 * settings it loaded are the ones kvvmd serves. A new string. */
KVVM_API char *kvvm_worker_settings_fp(const struct kvvm_config *cfg);

/* Encoders return a new NUL-terminated text (len without the NUL), NULL (logged) only when
 * jansson refuses a value. Decoders refuse another major version, missing or mistyped
 * members, texts that do not fit and counts that do not match (KVVM_E_INTERNAL, logged
 * once); on success the caller clears the result. */
KVVM_API char *kvvm_worker_req_encode(const struct kvvm_worker_req *r, size_t *len);
KVVM_API enum kvvm_err kvvm_worker_req_decode(const char *text, size_t len,
                                              struct kvvm_worker_req *r);
KVVM_API void kvvm_worker_req_clear(struct kvvm_worker_req *r);
KVVM_API char *kvvm_worker_ans_encode(const struct kvvm_worker_ans *a, size_t *len);
/* n: the number of outcomes kvvmd expects (a start-up answer has none). */
KVVM_API enum kvvm_err kvvm_worker_ans_decode(const char *text, size_t len, size_t n,
                                              struct kvvm_worker_ans *a);
KVVM_API void kvvm_worker_ans_clear(struct kvvm_worker_ans *a);

#endif
