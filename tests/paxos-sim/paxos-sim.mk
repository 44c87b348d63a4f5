# tests/paxos-sim/paxos-sim.mk: the Paxos core's deterministic simulator.
#
# Included from the root Makefile; also usable alone from the repository
# root: make -f tests/paxos-sim/paxos-sim.mk paxos-sim.  Needs only $(CC).
#
#   make paxos-sim                 PAXOS_SEEDS schedules (default 3000) in
#                                  SIM_JOBS processes (default 2), ~10 s
#   make paxos-sim SEED=1234       replay one schedule (NODES=3|5,
#                                  VERBOSE=1 traces it)
#   make paxos-sim-mutants         every known-wrong Paxos core variant
#                                  must be caught within the same budget
#   make paxos-store-test          build tests/paxos-sim/paxos_disk_test (the
#                                  acceptor store, extension/paxos/paxos_disk.c,
#                                  saved, reopened, cut and corrupted) and run it
#
# It shares tests/sim's PRNG, allocator and linearizability checker
# (sim_util.c, lincheck.c) and its mutant runner (run-mutants.sh).
# Objects go to tests/paxos-sim/build/<variant>/.

PSIM_SAVED_GOAL := $(.DEFAULT_GOAL)

PSIM_DIR     := tests/paxos-sim
PAXOS_DIR    := extension/paxos/core
PSIM_CC      ?= $(CC)
PSIM_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wmissing-prototypes
SIM_JOBS     ?= 2
PAXOS_SEEDS  ?= 12000

PAXOS_SRCS   := $(sort $(wildcard $(PAXOS_DIR)/*.c))
PAXOS_HDRS   := $(wildcard $(PAXOS_DIR)/*.h)
PSIM_SRCS    := $(addprefix $(PSIM_DIR)/,psim.c psim_world.c psim_check.c \
				psim_scenario.c psim_bytes.c psim_limits.c)
PSIM_SHARED  := tests/sim/sim_util.c tests/sim/lincheck.c
PSIM_HDRS    := $(wildcard $(PSIM_DIR)/*.h) tests/sim/sim.h
PSIM_MUTANTS := ACCEPT_BELOW_PROMISE IGNORE_PROMISED_VALUES FORGET_PROMISE \
				LEARN_MIXED_BALLOTS FAST_WITHOUT_PROMISE ABSENT_IS_EMPTY \
				FORGET_ROUND
PSIM_BIN     := $(PSIM_DIR)/paxos-sim
PSIM_MUTANT_BINS := $(foreach m,$(PSIM_MUTANTS),$(PSIM_DIR)/paxos-sim-mutant-$(m))
PDISK_TEST   := $(PSIM_DIR)/paxos_disk_test
PDISK_SRCS   := extension/paxos/paxos_disk.c extension/common/store_io.c
PDISK_HDRS   := extension/paxos/paxos_disk.h extension/common/store_io.h $(PAXOS_HDRS)
PSIM_CLEAN   := $(PSIM_DIR)/build $(PSIM_BIN) $(PSIM_MUTANT_BINS) $(PDISK_TEST)

psim_objs = $(patsubst %.c,$(PSIM_DIR)/build/$(1)/%.o,$(notdir $(PAXOS_SRCS) $(PSIM_SRCS) $(PSIM_SHARED)))

# PSIM_VARIANT NAME DEFINES BINARY: compile and link rules for one variant.
define PSIM_VARIANT
$(PSIM_DIR)/build/$(1)/%.o: $(PAXOS_DIR)/%.c $(PAXOS_HDRS)
	@mkdir -p $$(@D)
	$$(PSIM_CC) $$(PSIM_CFLAGS) $(2) -c -o $$@ $$<
$(PSIM_DIR)/build/$(1)/%.o: $(PSIM_DIR)/%.c $(PSIM_HDRS) $(PAXOS_HDRS)
	@mkdir -p $$(@D)
	$$(PSIM_CC) $$(PSIM_CFLAGS) $(2) -c -o $$@ $$<
$(PSIM_DIR)/build/$(1)/%.o: tests/sim/%.c tests/sim/sim.h
	@mkdir -p $$(@D)
	$$(PSIM_CC) $$(PSIM_CFLAGS) -c -o $$@ $$<
$(3): $(call psim_objs,$(1))
	$$(PSIM_CC) -o $$@ $$^
endef

$(eval $(call PSIM_VARIANT,normal,,$(PSIM_BIN)))
$(foreach m,$(PSIM_MUTANTS),$(eval $(call PSIM_VARIANT,$(m),-DPAXOS_MUTANT_$(m),$(PSIM_DIR)/paxos-sim-mutant-$(m))))

# the acceptor store's test: the store and its helpers, no core
$(PSIM_DIR)/build/disk/%.o: extension/paxos/%.c $(PDISK_HDRS)
	@mkdir -p $(@D)
	$(PSIM_CC) $(PSIM_CFLAGS) -Iextension/common -c -o $@ $<
$(PSIM_DIR)/build/disk/%.o: extension/common/%.c $(PDISK_HDRS)
	@mkdir -p $(@D)
	$(PSIM_CC) $(PSIM_CFLAGS) -c -o $@ $<
$(PSIM_DIR)/build/disk/%.o: $(PSIM_DIR)/%.c $(PDISK_HDRS)
	@mkdir -p $(@D)
	$(PSIM_CC) $(PSIM_CFLAGS) -c -o $@ $<
$(PDISK_TEST): $(PSIM_DIR)/build/disk/paxos_disk_test.o \
			   $(patsubst %.c,$(PSIM_DIR)/build/disk/%.o,$(notdir $(PDISK_SRCS)))
	$(PSIM_CC) -o $@ $^

PSIM_SUBMAKE = $(MAKE) --no-print-directory -f $(PSIM_DIR)/paxos-sim.mk -j$(SIM_JOBS) \
			   PSIM_CC="$(PSIM_CC)"

.PHONY: paxos-sim paxos-sim-mutants paxos-sim-clean paxos-store-test
paxos-sim:
	@$(PSIM_SUBMAKE) $(PSIM_BIN)
ifdef SEED
	$(PSIM_BIN) --seed $(SEED) $(if $(NODES),--nodes $(NODES)) $(if $(VERBOSE),--verbose)
else
	$(PSIM_BIN) --seeds $(PAXOS_SEEDS) --jobs $(SIM_JOBS) $(if $(NODES),--nodes $(NODES))
endif

paxos-sim-mutants:
	@$(PSIM_SUBMAKE) $(PSIM_MUTANT_BINS)
	MUTANT_PREFIX=$(PSIM_DIR)/paxos-sim-mutant- MUTANT_LABEL=paxos-sim-mutants \
		tests/sim/run-mutants.sh $(PAXOS_SEEDS) $(SIM_JOBS) $(PSIM_MUTANTS)

# paxos-store-test: exits 0 when every check passed (in a mkdtemp
# directory under $TMPDIR, removed at the end)
paxos-store-test:
	@$(PSIM_SUBMAKE) $(PDISK_TEST)
	$(PDISK_TEST)

paxos-sim-clean:
	rm -rf $(PSIM_CLEAN)

ifneq ($(PSIM_SAVED_GOAL),)
.DEFAULT_GOAL := $(PSIM_SAVED_GOAL)
endif
