/* keep_dsos.c - linked into the executables of a sanitizer build (INCREMF_SANITIZE=ON) only.
 *
 * 1. Open MPI and PMIx load their components (mca_*.so, pmix_mca_*.so) with dlopen() and
 * dlclose() them in MPI_Finalize, before LeakSanitizer looks for leaks at exit. The stack frames
 * of what those components allocated then point into unmapped code: they print as "<unknown
 * module>", no suppression can match them and nobody can tell whose allocation it was. This
 * dlclose(), exported from the executable (-Wl,--export-dynamic-symbol=dlclose), interposes the C
 * library's for every shared library in the process, so modules stay mapped until exit and every
 * leak report names the library it came from (and what a component's globals still point to is
 * no longer reported at all). POSIX allows it: dlclose() "does not create any requirement upon
 * the implementation, such as removal of the code or symbols referenced".
 *
 * 2. With gcc, -fsanitize=address,undefined links two runtimes, libasan and libubsan, each with
 * its own copy of the sanitizer common code. libubsan's call that applies log_path resolves to
 * libasan's exported __sanitizer_set_report_path, so UBSan reports went to stderr whatever
 * ASAN_OPTIONS or UBSAN_OPTIONS said (tests/sanitizers/check-reports.sh, which collects reports
 * from log_path files, would not have seen one from a process whose stderr a test discards).
 * When IMF_UBSAN_LOG_PATH is set (check-reports.sh sets it to the same prefix as ASan's
 * log_path), the constructor below calls libubsan's own setter, found through its handle. */
#include <dlfcn.h>
#include <stdlib.h>

int dlclose(void *handle) {
  (void)handle;
  return 0;
}

__attribute__((constructor)) static void imf_ubsan_log_path(void) {
  const char *path = getenv("IMF_UBSAN_LOG_PATH");
  if (!path || !*path) return;
  void *ubsan = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD); /* NULL with clang: one runtime */
  if (!ubsan) return;
  void (*set_path)(const char *) = (void (*)(const char *))dlsym(ubsan, "__sanitizer_set_report_path");
  if (set_path) set_path(path);
}
