/* The stop signals of gtmsmd (SIGTERM and SIGINT), whichever thread the
 * kernel hands them to.
 *
 * A process-directed signal goes to any thread that does not block it.
 * OpenBLAS starts its thread pool when the library is loaded, before main
 * runs, so blocking the signals in main (and sigwait) cannot cover those
 * threads: a second SIGTERM arriving while main is busy stopping went to an
 * OpenBLAS thread, whose default action killed the process mid-stop. So the
 * signals get a process-wide handler that only counts them and writes a byte
 * to a self-pipe: on any thread the effect is the same, and main reads the
 * pipe. The first signal starts the graceful stop; later ones are counted
 * and otherwise ignored, so a stop always finishes (in-flight requests
 * answered, WAL checkpointed). Threads gtmsmd creates itself (the HTTP
 * workers, the connection reaper) start with the signals blocked, so only
 * main and the library threads ever run the handler.
 *
 * SIGHUP goes the same way (its own counter, the same pipe): signals_wait
 * returns SIGHUP for it, and main reloads the models folder and waits again. */
#ifndef GTMSMD_SIGNALS_H
#define GTMSMD_SIGNALS_H

#include <signal.h>
#include <stddef.h>

/* Installs the handlers for SIGTERM, SIGINT and SIGHUP and ignores SIGPIPE. Call
 * once, early in main. Returns 0 or GTMSM_EIO with a message. */
int signals_install(char *err, size_t errlen);
/* Blocks until the first stop signal (returns at once if one already came)
 * and returns its number, or until a SIGHUP not yet returned and returns
 * SIGHUP (several SIGHUPs before the call return it once). A stop signal
 * wins over a pending SIGHUP. */
int signals_wait(void);
/* Stop signals received so far. */
long signals_received(void);
/* Blocks the stop signals and SIGHUP in the calling thread, for the threads it is about
 * to create to inherit, and saves the previous mask in *old; restore it with
 * signals_unblock_thread(old). */
void signals_block_thread(sigset_t *old);
void signals_unblock_thread(const sigset_t *old);

#endif
