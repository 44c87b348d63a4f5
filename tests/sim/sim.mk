# tests/sim/sim.mk: the Raft core's deterministic simulator.
#
# Included from the root Makefile; also usable alone from the repository
# root: make -f tests/sim/sim.mk sim.  Needs only $(CC).
#
#   make sim                   SEEDS schedules (default 6000) in SIM_JOBS
#                              processes (default 2), about 10 seconds
#   make sim SEEDS=100000      a longer soak
#   make sim SEED=1234         replay one schedule; VERBOSE=1 traces it
#   make sim NODES=5           only 5-node schedules (default: odd seeds
#                              run 3 nodes, even seeds 5)
#   make sim-mutants           build every known-wrong core variant and
#                              check the simulator catches each one
#   make histcheck-test        build tests/sim/histcheck (the checker as a
#                              tool reading a history file) and check it
#                              against tests/sim/histories/
#   make store-test            build tests/sim/store_test (the Raft node's
#                              durable store, extension/raft/raft_store.c,
#                              saved, reopened, cut and corrupted) and run it
#   make sim-clean             remove what these targets built
#
# Objects go to tests/sim/build/<variant>/, so the normal simulator and
# each mutant (-DRAFT_MUTANT_<NAME>) never share an object file.

# Keep the including Makefile's default goal (its 'all').
SIM_SAVED_GOAL := $(.DEFAULT_GOAL)

SIM_DIR      := tests/sim
RAFT_DIR     := extension/raft/core
SIM_CC       ?= $(CC)
SIM_CFLAGS   := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wmissing-prototypes
SIM_JOBS     ?= 2
SEEDS        ?= 6000

RAFT_SRCS    := $(sort $(wildcard $(RAFT_DIR)/*.c))
RAFT_HDRS    := $(wildcard $(RAFT_DIR)/*.h)
SIM_SRCS     := $(addprefix $(SIM_DIR)/,sim.c sim_world.c sim_node.c sim_check.c \
				sim_util.c lincheck.c scenarios.c wire_test.c peers_test.c)
PEERS_SRC    := extension/raft/raft_peers.c
SIM_HDRS     := $(wildcard $(SIM_DIR)/*.h)
SIM_MUTANTS  := COMMIT_OLD_TERM VOTE_NO_LOG_CHECK APPLY_UNCOMMITTED NO_TRUNCATE \
				READ_NO_CONFIRM FORGET_VOTE SEND_BEFORE_PERSIST
SIM_BIN      := $(SIM_DIR)/sim
SIM_MUTANT_BINS := $(foreach m,$(SIM_MUTANTS),$(SIM_DIR)/sim-mutant-$(m))
RAFT_BENCH   := $(SIM_DIR)/raftbench
HISTCHECK    := $(SIM_DIR)/histcheck
STORE_TEST   := $(SIM_DIR)/store_test
STORE_SRC    := extension/raft/raft_store.c
# the stores' shared helpers (CRC-32C, whole writes and reads)
STORE_IO_SRC := extension/common/store_io.c
SIM_CLEAN    := $(SIM_DIR)/build $(SIM_BIN) $(SIM_MUTANT_BINS) $(RAFT_BENCH) $(HISTCHECK) \
				$(STORE_TEST)

# sim_objs VARIANT: the object files of one build variant.
sim_objs = $(patsubst %.c,$(SIM_DIR)/build/$(1)/%.o,$(notdir $(RAFT_SRCS) $(SIM_SRCS) $(PEERS_SRC)))

# SIM_VARIANT NAME DEFINES BINARY: compile and link rules for one variant.
define SIM_VARIANT
$(SIM_DIR)/build/$(1)/%.o: $(RAFT_DIR)/%.c $(RAFT_HDRS)
	@mkdir -p $$(@D)
	$$(SIM_CC) $$(SIM_CFLAGS) $(2) -c -o $$@ $$<
$(SIM_DIR)/build/$(1)/%.o: $(SIM_DIR)/%.c $(SIM_HDRS) $(RAFT_HDRS)
	@mkdir -p $$(@D)
	$$(SIM_CC) $$(SIM_CFLAGS) $(2) -c -o $$@ $$<
$(SIM_DIR)/build/$(1)/raft_peers.o: $(PEERS_SRC) $(PEERS_SRC:.c=.h) $(RAFT_HDRS)
	@mkdir -p $$(@D)
	$$(SIM_CC) $$(SIM_CFLAGS) $(2) -c -o $$@ $$<
$(3): $(call sim_objs,$(1))
	$$(SIM_CC) -o $$@ $$^
endef

$(eval $(call SIM_VARIANT,normal,,$(SIM_BIN)))
$(foreach m,$(SIM_MUTANTS),$(eval $(call SIM_VARIANT,$(m),-DRAFT_MUTANT_$(m),$(SIM_DIR)/sim-mutant-$(m))))

$(RAFT_BENCH): $(SIM_DIR)/raftbench.c $(SIM_DIR)/sim_util.c $(RAFT_SRCS) $(RAFT_HDRS) $(SIM_HDRS)
	$(SIM_CC) $(SIM_CFLAGS) -o $@ $(SIM_DIR)/raftbench.c $(SIM_DIR)/sim_util.c $(RAFT_SRCS)

$(HISTCHECK): $(SIM_DIR)/histcheck.c $(SIM_DIR)/lincheck.c $(SIM_DIR)/sim_util.c $(SIM_HDRS) $(RAFT_HDRS)
	$(SIM_CC) $(SIM_CFLAGS) -o $@ $(SIM_DIR)/histcheck.c $(SIM_DIR)/lincheck.c $(SIM_DIR)/sim_util.c

$(SIM_DIR)/build/store/%.o: $(SIM_DIR)/%.c $(STORE_SRC:.c=.h) $(RAFT_HDRS)
	@mkdir -p $(@D)
	$(SIM_CC) $(SIM_CFLAGS) -c -o $@ $<
$(SIM_DIR)/build/store/raft_store.o: $(STORE_SRC) $(STORE_SRC:.c=.h) $(STORE_IO_SRC:.c=.h) $(RAFT_HDRS)
	@mkdir -p $(@D)
	$(SIM_CC) $(SIM_CFLAGS) -I$(dir $(STORE_IO_SRC)) -c -o $@ $<
$(SIM_DIR)/build/store/store_io.o: $(STORE_IO_SRC) $(STORE_IO_SRC:.c=.h)
	@mkdir -p $(@D)
	$(SIM_CC) $(SIM_CFLAGS) -c -o $@ $<
$(STORE_TEST): $(SIM_DIR)/build/store/store_test.o $(SIM_DIR)/build/store/raft_store.o \
			   $(SIM_DIR)/build/store/store_io.o
	$(SIM_CC) -o $@ $^

# The binaries are built by a parallel sub-make of this file alone (the
# compiler is passed on, so it is the including Makefile's $(CC)).
SIM_SUBMAKE  = $(MAKE) --no-print-directory -f $(SIM_DIR)/sim.mk -j$(SIM_JOBS) \
			   SIM_CC="$(SIM_CC)"

.PHONY: sim sim-mutants sim-clean raftbench histcheck-test store-test
sim:
	@$(SIM_SUBMAKE) $(SIM_BIN)
ifdef SEED
	$(SIM_BIN) --seed $(SEED) $(if $(NODES),--nodes $(NODES)) $(if $(VERBOSE),--verbose)
else
	$(SIM_BIN) --seeds $(SEEDS) --jobs $(SIM_JOBS) $(if $(NODES),--nodes $(NODES))
endif

sim-mutants:
	@$(SIM_SUBMAKE) $(SIM_MUTANT_BINS)
	$(SIM_DIR)/run-mutants.sh $(SEEDS) $(SIM_JOBS) $(SIM_MUTANTS)

raftbench: $(RAFT_BENCH)

# histcheck-test: its self-test, then each good-*.hist must pass (exit 0)
# and each bad-*.hist must fail (exit 1), and a malformed one exit 2.
histcheck-test:
	@$(SIM_SUBMAKE) $(HISTCHECK)
	@fail=0; \
	$(HISTCHECK) --self-test $(SIM_DIR)/histories/good-*.hist || fail=1; \
	for f in $(SIM_DIR)/histories/good-*.hist; do \
		$(HISTCHECK) $$f >/dev/null || { echo "histcheck-test: $$f should pass"; fail=1; }; done; \
	for f in $(SIM_DIR)/histories/bad-*.hist; do \
		$(HISTCHECK) $$f >/dev/null 2>&1; rc=$$?; \
		[ $$rc -eq 1 ] || { echo "histcheck-test: $$f should fail with 1, got $$rc"; fail=1; }; done; \
	for f in $(SIM_DIR)/histories/malformed-*.hist; do \
		$(HISTCHECK) $$f >/dev/null 2>&1; rc=$$?; \
		[ $$rc -eq 2 ] || { echo "histcheck-test: $$f should be refused with 2, got $$rc"; fail=1; }; done; \
	[ $$fail -eq 0 ] && echo "histcheck-test: ok"; exit $$fail

# store-test: exits 0 when every check passed (in a mkdtemp directory
# under $TMPDIR, removed at the end)
store-test:
	@$(SIM_SUBMAKE) $(STORE_TEST)
	$(STORE_TEST)

sim-clean:
	rm -rf $(SIM_CLEAN)

ifneq ($(SIM_SAVED_GOAL),)
.DEFAULT_GOAL := $(SIM_SAVED_GOAL)
endif
