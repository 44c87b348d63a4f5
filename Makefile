# distsys: PGXS build of the extension, the relay daemon and the test targets.
#
#   make            build distsys.so, distsys-relay and distsys-kafka-mock
#   make install    install them into the PostgreSQL found by pg_config
#   make test       every test on throwaway clusters (see tools/test.sh)
#   make demo       a walk-through on throwaway clusters (see tools/demo.sh)
#   make sim        the Raft core's deterministic simulator (tests/sim/sim.mk);
#                   make sim-mutants checks that it catches wrong variants

EXTENSION   = distsys
MODULE_big  = distsys
DATA        = distsys--1.0.sql
PGFILEDESC  = "distsys - distributed systems primitives inside PostgreSQL"

EXT_SRCS    = $(sort $(wildcard extension/*.c))
# libpq: the 2PC coordinator (and later subsystems) call other nodes
SHLIB_LINK_INTERNAL = $(libpq)
PG_CPPFLAGS = -I$(shell $(PG_CONFIG) --includedir 2>/dev/null)
OBJS        = $(EXT_SRCS:.c=.o)

PG_CONFIG  ?= pg_config
PGXS       := $(wildcard $(shell $(PG_CONFIG) --pgxs 2>/dev/null))

# 'make test' and 'make demo' install what is missing (PGXS included) before
# they build, so only the build targets need PGXS at parse time.
ifneq ($(PGXS),)
include $(PGXS)

PG_CFLAGS  += -Wall -Wmissing-prototypes -Werror=implicit-function-declaration

# PGXS tracks header dependencies only when PostgreSQL was configured with
# --enable-depend; a struct changed in a header must rebuild every user of it
$(OBJS): $(wildcard extension/*.h)

include relay/relay.mk
include tests/sim/sim.mk

all: relay
install: install-relay
EXTRA_CLEAN = $(RELAY_BINS) relay/*.o results regression.diffs regression.out tmp_check output_iso log \
			  $(SIM_CLEAN)
else ifeq ($(filter test demo,$(MAKECMDGOALS)),)
$(error PGXS not found: install postgresql-server-dev-15 (or run 'make test' as root, which installs it))
endif

.PHONY: test demo
test:
	tools/test.sh

demo:
	tools/demo.sh
