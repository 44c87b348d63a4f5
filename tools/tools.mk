# tools/tools.mk: test helpers that are client programs (not installed).
#
# Included from the root Makefile.
#
#   make raft-history   tools/raft-history: concurrent clients of the Raft
#                       key-value store or the CASPaxos registers on every
#                       node, writing the history that tests/sim/histcheck
#                       judges (t/042_raft_chaos.pl, t/047_paxos_chaos.pl;
#                       tools/test.sh builds both and tells the TAP tests
#                       where they are)

RAFT_HISTORY  = tools/raft-history
TOOLS_CFLAGS  = -O2 -g -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes -Werror \
				-std=gnu11 -pthread -I$(shell $(PG_CONFIG) --includedir)
TOOLS_LIBS    = -L$(shell $(PG_CONFIG) --libdir) -lpq -pthread

$(RAFT_HISTORY): tools/raft-history.c
	$(CC) $(TOOLS_CFLAGS) -o $@ $< $(TOOLS_LIBS)

.PHONY: raft-history
raft-history: $(RAFT_HISTORY)
