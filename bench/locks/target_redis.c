/*-------------------------------------------------------------------------
 *
 * target_redis.c
 *	  Redis target of the lock benchmark, through hiredis on loopback: the
 *	  single-instance lock pattern Redis documents.
 *
 *	  lock:    SET name token NX PX 30000
 *	  unlock:  EVALSHA of "delete name if its value is still my token"
 *
 * The token is unique per grant (client number and a counter), so a client
 * can never delete a lock that expired and was taken by someone else.
 * There is no blocking mode: under contention the driver retries a busy
 * SET every --retry-us.  Each connection belongs to one client thread.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "lockbench.h"

static const char unlock_script[] =
"if redis.call('get', KEYS[1]) == ARGV[1] then "
"return redis.call('del', KEYS[1]) else return 0 end";

typedef struct RedisConn
{
	redisContext *ctx;
	int			client;
	unsigned long seq;
	char		token[64];		/* of the lock held, if any */
	char		sha[48];		/* of unlock_script */
} RedisConn;

static void
redis_close(void *conn)
{
	RedisConn  *rc = conn;

	redisFree(rc->ctx);
	free(rc);
}

/*
 * redis_open: connect and load the unlock script, keeping its SHA1 for
 * EVALSHA.  NULL after printing why on failure.
 */
static void *
redis_open(const BenchConfig *cfg, int client)
{
	struct timeval timeout = {5, 0};
	RedisConn  *rc = calloc(1, sizeof(RedisConn));
	redisReply *reply;

	rc->client = client;
	rc->ctx = redisConnectWithTimeout(BENCH_HOST, cfg->port, timeout);
	if (rc->ctx == NULL || rc->ctx->err)
	{
		bench_error(client, "connect: %s", rc->ctx ? rc->ctx->errstr : "out of memory");
		if (rc->ctx)
			redisFree(rc->ctx);
		free(rc);
		return NULL;
	}
	reply = redisCommand(rc->ctx, "SCRIPT LOAD %s", unlock_script);
	if (reply == NULL || reply->type != REDIS_REPLY_STRING)
	{
		bench_error(client, "SCRIPT LOAD: %s", reply ? reply->str : rc->ctx->errstr);
		if (reply)
			freeReplyObject(reply);
		redis_close(rc);
		return NULL;
	}
	snprintf(rc->sha, sizeof(rc->sha), "%s", reply->str);
	freeReplyObject(reply);
	return rc;
}

static LockResult
redis_acquire(void *conn, const char *lock, bool wait)
{
	RedisConn  *rc = conn;
	redisReply *reply;
	LockResult	r = LOCK_FAILED;

	(void) wait;
	snprintf(rc->token, sizeof(rc->token), "c%d-%lu", rc->client, ++rc->seq);
	reply = redisCommand(rc->ctx, "SET %s %s NX PX %d", lock, rc->token,
						 BENCH_TTL_SECONDS * 1000);
	if (reply == NULL)
		bench_error(rc->client, "SET: %s", rc->ctx->errstr);
	else if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0)
		r = LOCK_GRANTED;
	else if (reply->type == REDIS_REPLY_NIL)
		r = LOCK_BUSY;
	else
		bench_error(rc->client, "SET: unexpected reply type %d", reply->type);
	if (reply)
		freeReplyObject(reply);
	return r;
}

static bool
redis_release(void *conn, const char *lock)
{
	RedisConn  *rc = conn;
	redisReply *reply;
	bool		ok = false;

	reply = redisCommand(rc->ctx, "EVALSHA %s 1 %s %s", rc->sha, lock, rc->token);
	if (reply == NULL)
		bench_error(rc->client, "EVALSHA: %s", rc->ctx->errstr);
	else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
		ok = true;
	else
		bench_error(rc->client, "EVALSHA: lock \"%s\" was not ours any more", lock);
	if (reply)
		freeReplyObject(reply);
	return ok;
}

const LockTarget redis_target = {
	"redis", true, false,
	redis_open, redis_acquire, redis_release, redis_close, NULL
};
