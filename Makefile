# distsys: PGXS build of the extension, the relay daemon and the test targets.
#
#   make            build distsys.so, distsys-relay and distsys-kafka-mock
#   make install    install them into the PostgreSQL found by pg_config
#   make test       every test on throwaway clusters (see tools/test.sh);
#                   make test ONLY=REGEX runs the tests whose names match
#   make installcheck   the same suites against a running server that
#                   preloads distsys (PGXS standard target; docs/operations.md)
#   make demo       a walk-through on throwaway clusters (see tools/demo.sh)
#   make sim        the Raft core's deterministic simulator (tests/sim/sim.mk);
#                   make sim-mutants checks that it catches wrong variants
#   make paxos-sim  the Paxos core's simulator (tests/paxos-sim/paxos-sim.mk);
#                   make paxos-sim-mutants likewise
#   make fuzz       hostile arguments for every SQL function (tools/fuzz.sh)
#   make fuzz-relay hostile flags, config files, Kafka records and metrics
#                   requests for the sanitized relay (tools/fuzz-relay.sh)

EXTENSION   = distsys
MODULE_big  = distsys
DATA        = distsys--1.0.sql
PGFILEDESC  = "distsys - distributed systems primitives inside PostgreSQL"

# One folder per subsystem (docs/design/README.md).  Subsystem headers have
# distinct names, so each folder is on the include path and a file includes
# "dlock.h", not a path.
EXT_DIRS    = common lock msg dtx raft paxos
EXT_SRCS    = $(sort $(foreach d,$(EXT_DIRS),$(wildcard extension/$(d)/*.c)))
EXT_HDRS    = $(foreach d,$(EXT_DIRS),$(wildcard extension/$(d)/*.h))
# The consensus cores are pure C: they are compiled without PostgreSQL's
# include path (CORE_CFLAGS), so a PostgreSQL header in a core does not build.
RAFT_CORE_SRCS = $(sort $(wildcard extension/raft/core/*.c))
PAXOS_CORE_SRCS = $(sort $(wildcard extension/paxos/core/*.c))
# libpq: the 2PC coordinator (and later subsystems) call other nodes
SHLIB_LINK_INTERNAL = $(libpq)
PG_CPPFLAGS = $(foreach d,$(EXT_DIRS),-Iextension/$(d)) \
			  -I$(shell $(PG_CONFIG) --includedir 2>/dev/null)
OBJS        = $(EXT_SRCS:.c=.o) $(RAFT_CORE_SRCS:.c=.o) $(PAXOS_CORE_SRCS:.c=.o)

# PostgreSQL's standard test targets.  'make installcheck' runs these against
# a running server that preloads distsys (see docs/operations.md); 'make test'
# runs the same lists on throwaway clusters (tools/test.sh).
REGRESS     = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
ISOLATION   = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
TAP_TESTS   = 1
PROVE_TESTS = t/*.pl relay/t/*.pl
# the TAP tests' nodes preload distsys: every node they start reads this
export TEMP_CONFIG ?= $(CURDIR)/tools/test.conf

PG_CONFIG  ?= pg_config
PGXS       := $(wildcard $(shell $(PG_CONFIG) --pgxs 2>/dev/null))

# 'make test' and 'make demo' install what is missing (PGXS included) before
# they build, so only the build targets need PGXS at parse time.
ifneq ($(PGXS),)
include $(PGXS)

PG_CFLAGS  += -Wall -Wmissing-prototypes -Werror=implicit-function-declaration
# after the include: Makefile.global empties PROVE_FLAGS (t/ holds our helpers)
PROVE_FLAGS = -I t

# PGXS tracks header dependencies only when PostgreSQL was configured with
# --enable-depend; a struct changed in a header must rebuild every user of it
$(EXT_SRCS:.c=.o): $(EXT_HDRS)

# The consensus cores: PGXS's CFLAGS (the server's optimisation and warnings), no
# CPPFLAGS, so neither the server's include directories nor -D_GNU_SOURCE.
CORE_CFLAGS = $(CFLAGS) $(CFLAGS_SL) -std=gnu11 -Werror
extension/raft/core/%.o: extension/raft/core/%.c $(wildcard extension/raft/core/*.h)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<
extension/paxos/core/%.o: extension/paxos/core/%.c $(wildcard extension/paxos/core/*.h)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<

include relay/relay.mk
include tests/sim/sim.mk
include tests/paxos-sim/paxos-sim.mk
include tools/tools.mk

all: relay
install: install-relay
EXTRA_CLEAN = $(RELAY_BINS) relay/*.o results regression.diffs regression.out tmp_check output_iso log \
			  $(SIM_CLEAN) $(PSIM_CLEAN) $(RAFT_HISTORY)
else ifeq ($(filter test demo fuzz fuzz-relay,$(MAKECMDGOALS)),)
$(error PGXS not found: install postgresql-server-dev-15 (or run 'make test' as root, which installs it))
endif

.PHONY: test demo fuzz fuzz-relay
test:
	ONLY="$(ONLY)" tools/test.sh

demo:
	tools/demo.sh

# the hostile-input run of every SQL function (not a test: see tools/fuzz.sh)
fuzz:
	tools/fuzz.sh $(if $(SECONDS),--seconds $(SECONDS))

# the same for distsys-relay's flags, config files, records and metrics port
fuzz-relay:
	tools/fuzz-relay.sh

# prove_installcheck: only the TAP tests of 'make installcheck'
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)

# print-VAR: the value of a variable (tools/test.sh reads the test lists)
print-%:
	@echo $($*)
