/*
 * dist_impl.h: what dist.c shares with the other communicators' files
 * (src/dist/nccl.c): making a communicator current, and the MPI
 * heartbeat's watch of another library.
 */
#ifndef OT_DIST_IMPL_H
#define OT_DIST_IMPL_H

#include "dist/dist.h"

/* Makes c the current communicator (ot_dist_fini then ends it through
   c->ops->fini). */
void ot_dist_set_current(ot_comm *c);

/* Under MPI, the heartbeat thread (mpi_shim.c) calls poll about once a
   second: a non-zero return (its message in msg) ends the job as a silent
   rank does; on_abort runs before the job is ended either way. poll NULL
   stops the watch. Nothing without MPI. */
void ot_dist_watch(int (*poll)(void *arg, char *msg, int len), void (*on_abort)(void *arg),
                   void *arg);

#endif
