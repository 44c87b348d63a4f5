/*-------------------------------------------------------------------------
 *
 * durable_file.c
 *	  Small files under the data directory, replaced durably.
 *
 * For state that must survive a crash exactly as it was acknowledged (the
 * fencing-token reserve of the locks, the Raft node's identity and hard
 * state): the new contents go to "<path>.tmp", are synced and renamed
 * over the file, and the directory is synced, so a crash leaves either the
 * old file or the new one, never a torn one.  Paths are
 * relative to the data directory (every process's working directory).
 * No shared state: each file has a single writer, named by its subsystem.
 *
 * These files are synced whatever the server's fsync setting says, with
 * fsync(2) itself rather than pg_fsync and durable_rename (which do nothing
 * at fsync = off): a fencing token handed out twice or a Raft vote cast
 * twice after a power loss breaks a promise that no later check can
 * repair, and the files are small and rarely written, so syncing them
 * costs the server that chose fsync = off nothing it would notice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file_perm.h"
#include "storage/fd.h"

#include "distsys.h"

/*
 * sync_path: open path (a file or a directory) and fsync it; a failure is
 * reported at elevel.
 */
static void
sync_path(const char *path, bool is_dir, int elevel)
{
	int			fd = OpenTransientFile(path, (is_dir ? O_RDONLY : O_RDWR) | PG_BINARY);

	if (fd < 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not open \"%s\" to sync it: %m", path)));
		return;
	}
	if (fsync(fd) != 0)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not fsync \"%s\": %m", path)));
	CloseTransientFile(fd);
}

/*
 * sync_parent: fsync the directory that holds path.
 */
static void
sync_parent(const char *path, int elevel)
{
	char	   *parent = pstrdup(path);

	get_parent_directory(parent);
	sync_path(parent[0] ? parent : ".", true, elevel);
	pfree(parent);
}

/*
 * distsys_make_dir_durably: create directory dir (its parent exists) if it
 * is missing, and sync the parent so that the new entry survives a crash.
 */
void
distsys_make_dir_durably(const char *dir)
{
	if (MakePGDirectory(dir) < 0)
	{
		if (errno == EEXIST)
			return;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));
	}
	sync_parent(dir, ERROR);
}

/*
 * distsys_write_file_durably: replace path with the len bytes of buf, as
 * the banner says.  sync_elevel is the level of a failed sync: ERROR for
 * state that can be rebuilt, data_sync_elevel(ERROR) (PANIC unless
 * data_sync_retry) where an unsynced file must never be believed, because
 * after a failed fsync the kernel may already have dropped the pages.
 */
void
distsys_write_file_durably(const char *path, const char *buf, int len, int sync_elevel)
{
	char	   *tmp = psprintf("%s.tmp", path);
	int			fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create \"%s\": %m", tmp)));
	errno = 0;
	if (write(fd, buf, len) != len)
	{
		if (errno == 0)
			errno = ENOSPC;
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write \"%s\": %m", tmp)));
	}
	if (fsync(fd) != 0)
		ereport(sync_elevel,
				(errcode_for_file_access(),
				 errmsg("could not fsync \"%s\": %m", tmp)));
	CloseTransientFile(fd);
	if (rename(tmp, path) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename \"%s\" to \"%s\": %m", tmp, path)));
	sync_parent(path, sync_elevel);
	pfree(tmp);
}
