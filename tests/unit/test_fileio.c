/* File primitives: atomic replace, exact folder modes, bounded reads, locks, sweeps. */
#include <stdlib.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "kt.h"
#include "kvvm/fileio.h"
#include "kvvm/mem.h"

static void atomic_replace(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "f"), *text = NULL;
  KT_CHECK(kvvm_file_write_atomic(path, "one", 3, 0600) == KVVM_OK);
  KT_CHECK(kvvm_file_write_atomic(path, "second", 6, 0640) == KVVM_OK);
  size_t len = 0;
  KT_CHECK(kvvm_file_read(path, 100, &text, &len) == KVVM_OK && len == 6);
  KT_STREQ(text, "second");
#ifndef _WIN32
  struct stat st;
  KT_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640);
#else
  KT_SKIP("permission bits: Windows files inherit their folder's DACL");
#endif
  /* Nothing but the file itself is left in the folder. */
  KT_CHECK(kvvm_dir_sweep_prefix(dir, KVVM_TEMP_PREFIX) == 0);
  free(text);
  kt_rmtree(dir);
  free(path);
  free(dir);
}

/* A planted symlink is replaced, never written through. */
static void symlink_not_followed(void)
{
#ifdef _WIN32
  KT_SKIP("POSIX symlinks: Windows' reparse points are test_fileio_windows's");
#else
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "f"), *victim = kvvm_path_join(dir, "v");
  char *text = NULL;
  kt_write(victim, "keep");
  KT_CHECK(symlink(victim, path) == 0);
  KT_CHECK(kvvm_file_write_atomic(path, "new", 3, 0600) == KVVM_OK);
  KT_CHECK(kvvm_file_read(victim, 100, &text, NULL) == KVVM_OK);
  KT_STREQ(text, "keep");
  struct stat st;
  KT_CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
  free(text);
  kt_rmtree(dir);
  free(victim);
  free(path);
  free(dir);
#endif
}

static void bounded_read(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "big"), *text = NULL;
  char buf[10001];
  memset(buf, 'x', 10000);
  buf[10000] = '\0';
  kt_write(path, buf);
  KT_CHECK(kvvm_file_read(path, 9999, &text, NULL) == KVVM_E_IO && text == NULL);
  KT_CHECK(kvvm_file_read(path, 10000, &text, NULL) == KVVM_OK);
  free(text);
  KT_CHECK(kvvm_file_read(dir, 100, &text, NULL) == KVVM_E_IO);
  char *missing = kvvm_path_join(dir, "none");
  KT_CHECK(kvvm_file_read(missing, 100, &text, NULL) == KVVM_E_NOENT);
  free(missing);
  kt_rmtree(dir);
  free(path);
  free(dir);
}

static void dir_modes(void)
{
  char *dir = kt_tmpdir(), *deep = kvvm_path_join(dir, "a/b/c");
#ifdef _WIN32
  KT_CHECK(kvvm_dir_ensure(deep, 0700) == KVVM_OK);
  struct kvvm_file_info fi;
  KT_CHECK(kvvm_file_info(deep, &fi) == KVVM_OK && fi.is_dir);
  KT_SKIP("folder modes and umask: Windows folders get kvvm's protected DACL");
#else
  chmod(dir, 0755);
  mode_t old = umask(022);
  KT_CHECK(kvvm_dir_ensure(deep, 0700) == KVVM_OK);
  umask(old);
  struct stat st;
  KT_CHECK(stat(deep, &st) == 0 && (st.st_mode & 07777) == 0700);
  /* An existing folder keeps its mode. */
  KT_CHECK(kvvm_dir_ensure(dir, 0700) == KVVM_OK);
  KT_CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0755);
#endif
  kt_rmtree(dir);
  free(deep);
  free(dir);
}

static void lock_exclusive(void)
{
  char *dir = kt_tmpdir(), *lock = kvvm_path_join(dir, "l");
  struct kvvm_lock *l = NULL, *l2 = NULL;
  KT_CHECK(!kvvm_lock_is_held(lock));
  KT_CHECK(kvvm_lock_open(lock, true, true, &l) == KVVM_OK && l != NULL);
#ifndef _WIN32
  pid_t pid = fork();
  if (pid == 0)
    _exit(kvvm_lock_is_held(lock) && kvvm_lock_open(lock, true, true, &l2) == KVVM_E_LOCKED &&
          l2 == NULL ? 0 : 1);
  int st = 1;
  waitpid(pid, &st, 0);
  KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#else
  (void)l2;
  KT_SKIP("the lock seen from a forked child: test_fileio_windows checks a second process");
#endif
  kvvm_lock_close(l);
  KT_CHECK(!kvvm_lock_is_held(lock));
  kvvm_lock_close(NULL);
  kt_rmtree(dir);
  free(lock);
  free(dir);
}

static int fill_twice(struct kvvm_wfile *f, void *ctx)
{
  return kvvm_wfile_write(f, ctx, 3) || kvvm_wfile_write(f, ctx, 3) ? -1 : 0;
}

static int fill_fails(struct kvvm_wfile *f, void *ctx)
{
  (void)f;
  (void)ctx;
  return -1;
}

/* Streamed content lands whole; a fill that fails leaves the old file and no temp file. */
static void atomic_with_fill(void)
{
  char *dir = kt_tmpdir(), *path = kvvm_path_join(dir, "f"), *text = NULL, abc[] = "abc";
  KT_CHECK(kvvm_file_write_atomic_with(path, 0600, fill_twice, abc) == KVVM_OK);
  KT_CHECK(kvvm_file_write_atomic_with(path, 0600, fill_fails, NULL) == KVVM_E_IO);
  KT_CHECK(kvvm_file_read(path, 100, &text, NULL) == KVVM_OK);
  KT_STREQ(text, "abcabc");
  KT_CHECK(kvvm_dir_sweep_prefix(dir, KVVM_TEMP_PREFIX) == 0);
  free(text);
  kt_rmtree(dir);
  free(path);
  free(dir);
}

static void info_list_remove(void)
{
  char *dir = kt_tmpdir(), *a = kvvm_path_join(dir, "a"), *sub = kvvm_path_join(dir, "sub");
  char **names = NULL;
  struct kvvm_file_info fi;
  kt_write(a, "12345");
  KT_CHECK(kvvm_dir_ensure(sub, 0750) == KVVM_OK);
  KT_CHECK(kvvm_file_info(a, &fi) == KVVM_OK && fi.is_file && !fi.is_dir && fi.size == 5);
  struct stat st;
  KT_CHECK(stat(a, &st) == 0 && fi.mtime_ns / 1000000000 == (int64_t)st.st_mtime);
#ifndef _WIN32
  KT_CHECK(kvvm_file_info(sub, &fi) == KVVM_OK && fi.is_dir && fi.mode == 0750);
#else
  KT_CHECK(kvvm_file_info(sub, &fi) == KVVM_OK && fi.is_dir);
  KT_SKIP("a folder's mode bits: Windows folders get kvvm's protected DACL");
#endif
  KT_CHECK(kvvm_dir_list(dir, &names) == KVVM_OK && names[0] && names[1] && !names[2]);
  KT_CHECK((strcmp(names[0], "a") == 0 && strcmp(names[1], "sub") == 0) ||
           (strcmp(names[0], "sub") == 0 && strcmp(names[1], "a") == 0));
  kvvm_strv_free(names);
  KT_CHECK(kvvm_dir_remove(dir) == KVVM_E_IO);   /* not empty */
  KT_CHECK(kvvm_file_remove(a) == KVVM_OK && kvvm_file_remove(a) == KVVM_OK);
  KT_CHECK(kvvm_file_info(a, &fi) == KVVM_E_NOENT);
  KT_CHECK(kvvm_dir_remove(sub) == KVVM_OK && kvvm_dir_remove(sub) == KVVM_OK);
  KT_CHECK(kvvm_dir_list(sub, &names) == KVVM_E_NOENT && names == NULL);
  kt_rmtree(dir);
  free(sub);
  free(a);
  free(dir);
}

static void paths(void)
{
  char *a = kvvm_path_join("/x/", "/y"), *b = kvvm_path_dirname("/x/y/z");
  char *c = kvvm_path_dirname("z"), *d = kvvm_path_dirname("/z");
  KT_STREQ(a, "/x/y");
  KT_STREQ(b, "/x/y");
  KT_STREQ(c, ".");
  KT_STREQ(d, "/");
  free(a);
  free(b);
  free(c);
  free(d);
}

int main(void)
{
  static const struct kt_case cases[] = {KT_CASE(atomic_replace), KT_CASE(symlink_not_followed),
                                         KT_CASE(bounded_read), KT_CASE(dir_modes),
                                         KT_CASE(lock_exclusive), KT_CASE(atomic_with_fill),
                                         KT_CASE(info_list_remove), KT_CASE(paths)};
  return KT_RUN("fileio", cases);
}
