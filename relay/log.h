/*-------------------------------------------------------------------------
 *
 * log.h
 *	  One line per event for distsys-relay and distsys-kafka-mock.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include <stdbool.h>

typedef enum LogLevel
{
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR
} LogLevel;

typedef enum LogFormat
{
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON
} LogFormat;

extern void log_setup(const char *progname, LogFormat format, LogLevel min_level);
extern void log_event(LogLevel level, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern bool log_parse_format(const char *s, LogFormat *format);

#define log_debug(...)	log_event(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)	log_event(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_event(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)	log_event(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif							/* RELAY_LOG_H */
