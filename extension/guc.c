/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every distsys.* setting, defined in one place.
 *
 * Subsystems read the variables declared in guc.h; nothing else defines a
 * setting.  The "distsys" prefix is reserved, so a misspelt distsys.*
 * setting in postgresql.conf is reported instead of silently ignored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "distsys.h"
#include "guc.h"

int			distsys_max_locks = 4096;
int			distsys_max_lock_holders = 8192;
int			distsys_lock_max_ttl_s = 7 * 24 * 3600;
int			distsys_inbox_retention_s = 7 * 24 * 3600;

static void distsys_define_startup_gucs(void);

/*
 * distsys_define_gucs: register the settings and reserve the prefix.
 */
void
distsys_define_gucs(void)
{
	distsys_define_startup_gucs();

	DefineCustomIntVariable("distsys.lock_max_ttl",
							"Longest lease a lock may be granted or renewed for.",
							NULL,
							&distsys_lock_max_ttl_s,
							7 * 24 * 3600, 1, 365 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("distsys.inbox_retention",
							"How long the inbox remembers a message, counted from when it was sent.",
							"Older messages are refused by inbox_claim, since a duplicate of them could no longer be recognised.",
							&distsys_inbox_retention_s,
							7 * 24 * 3600, 60, 10 * 365 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("distsys");
}

/*
 * distsys_define_startup_gucs: the settings that size shared memory.  They
 * can only be defined while preloading (defining a PGC_POSTMASTER setting
 * later is FATAL); without preloading their defaults are shown nowhere and
 * used by nothing, because nothing that needs shared memory runs.
 */
static void
distsys_define_startup_gucs(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("distsys.max_locks",
							"Maximum number of lock names held or waited for at once.",
							"Sizes shared memory at server start.",
							&distsys_max_locks,
							4096, 16, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("distsys.max_lock_holders",
							"Maximum number of lock grants held at once, counting every shared holder.",
							"Sizes shared memory at server start.",
							&distsys_max_lock_holders,
							8192, 16, 4000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}
