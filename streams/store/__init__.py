"""Everything kept in Redis: key layout, Lua steps, tally store, outbox, rebuild from the log."""
