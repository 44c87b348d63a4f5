/*-------------------------------------------------------------------------
 *
 * distsys.h
 *	  Declarations shared by the subsystems of distsys.so.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_H
#define DISTSYS_H

#include "fmgr.h"

#define DISTSYS_VERSION "1.0.0"

/* guc.c: every distsys.* setting, defined in one place */
extern void distsys_define_gucs(void);

/* shmem.c: shared memory of all subsystems, requested once at preload */
extern void distsys_shmem_install_hooks(void);
extern bool distsys_preloaded;
extern void distsys_require_preload(const char *what);

/* distsys.c: helpers shared by the subsystems */
extern void distsys_register_worker(const char *function, const char *name, int restart_s);
extern struct HTAB *distsys_name_hash(const char *what, Size entrysize);
extern char *distsys_text_arg(FunctionCallInfo fcinfo, int n, const char *what);
extern void distsys_commit_durably(void);

/*
 * The consensus cores' allocators (RaftAllocator, PaxosAllocator: the same
 * three functions), over the memory context given as ctx: palloc raises
 * an ERROR rather than return NULL, as the cores require.
 */
extern void *distsys_cxt_alloc(void *ctx, size_t size);
extern void *distsys_cxt_realloc(void *ctx, void *ptr, size_t size);
extern void distsys_cxt_free(void *ctx, void *ptr);

/* durable_file.c: small files under the data directory, replaced durably */
extern void distsys_make_dir_durably(const char *dir);
extern void distsys_write_file_durably(const char *path, const char *buf, int len,
									   int sync_elevel);

#endif							/* DISTSYS_H */
