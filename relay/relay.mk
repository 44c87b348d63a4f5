# relay/relay.mk: builds distsys-relay, distsys-kafka-mock and distsys-netem
# (the network emulator of the tests and benchmarks among nodes).
#
# Included from the root Makefile.  These are ordinary client programs: they
# link libpq and librdkafka and never include postgres.h.  extension/msg is
# on their include path for distsys_protocol.h alone, the header the relay
# shares with the extension (it includes no PostgreSQL header).

RELAY_CC      ?= $(CC)
RELAY_CFLAGS  = -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 \
				-Iextension/msg -I$(shell $(PG_CONFIG) --includedir) \
				$(shell pkg-config --cflags rdkafka 2>/dev/null)
RELAY_LIBS    = -L$(shell $(PG_CONFIG) --libdir) -lpq \
				$(shell pkg-config --libs rdkafka 2>/dev/null || echo -lrdkafka) -lpthread -lm

RELAY_COMMON  = relay/log.o relay/util.o relay/options.o relay/signals.o relay/kafka_conf.o
RELAY_OBJS    = relay/main.o relay/loop.o relay/db.o relay/relay.o relay/outbox.o relay/producer.o \
				relay/lanes.o relay/metrics.o relay/queue.o \
				relay/consume.o relay/consume_db.o relay/consume_kafka.o \
				$(RELAY_COMMON)
MOCK_OBJS     = $(patsubst %.c,%.o,$(wildcard relay/kafka_mock*.c)) relay/control_channel.o \
				relay/log.o relay/util.o
NETEM_OBJS    = relay/netem_main.o relay/netem_link.o relay/netem_cmd.o relay/control_channel.o \
				relay/log.o relay/util.o relay/signals.o
RELAY_BINS    = relay/distsys-relay relay/distsys-kafka-mock relay/distsys-netem

relay/%.o: relay/%.c $(wildcard relay/*.h) extension/msg/distsys_protocol.h
	$(RELAY_CC) $(RELAY_CFLAGS) -c -o $@ $<

relay/distsys-relay: $(RELAY_OBJS)
	$(RELAY_CC) -o $@ $^ $(RELAY_LIBS)

relay/distsys-kafka-mock: $(MOCK_OBJS)
	$(RELAY_CC) -o $@ $^ $(RELAY_LIBS)

# distsys-netem needs neither libpq nor librdkafka
relay/distsys-netem: $(NETEM_OBJS)
	$(RELAY_CC) -o $@ $^ -lm

.PHONY: relay install-relay
relay: $(RELAY_BINS)

install-relay: $(RELAY_BINS)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(RELAY_BINS) '$(DESTDIR)$(bindir)/'

# make relay-asan: the same three programs in relay/asan/, built with
# AddressSanitizer and UndefinedBehaviorSanitizer (-fno-sanitize-recover: the
# first report ends the program), for the sanitized run of the relay's
# tests in tools/test.sh.  librdkafka and libpq are not instrumented.
RELAY_ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
				   -fno-omit-frame-pointer
RELAY_ASAN_BINS  = relay/asan/distsys-relay relay/asan/distsys-kafka-mock relay/asan/distsys-netem

relay/asan/%.o: relay/%.c $(wildcard relay/*.h) extension/msg/distsys_protocol.h
	@mkdir -p relay/asan
	$(RELAY_CC) $(RELAY_CFLAGS) $(RELAY_ASAN_FLAGS) -c -o $@ $<

relay/asan/distsys-relay: $(RELAY_OBJS:relay/%=relay/asan/%)
	$(RELAY_CC) $(RELAY_ASAN_FLAGS) -o $@ $^ $(RELAY_LIBS)

relay/asan/distsys-kafka-mock: $(MOCK_OBJS:relay/%=relay/asan/%)
	$(RELAY_CC) $(RELAY_ASAN_FLAGS) -o $@ $^ $(RELAY_LIBS)

relay/asan/distsys-netem: $(NETEM_OBJS:relay/%=relay/asan/%)
	$(RELAY_CC) $(RELAY_ASAN_FLAGS) -o $@ $^ -lm

.PHONY: relay-asan clean-relay-asan
relay-asan: $(RELAY_ASAN_BINS)

clean-relay-asan:
	rm -rf relay/asan
clean: clean-relay-asan
