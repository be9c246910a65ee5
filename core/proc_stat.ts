/**
 * Reading Linux `/proc/<pid>/stat` and `/proc/<pid>/task/<tid>/stat` lines (also
 * `/proc/thread-self/stat`): the fields after the command name, which may itself hold spaces and
 * parentheses, so the line is split after its last `)`.
 *
 * @module
 */

/** CPU time and minor page faults of a process or thread, from its `stat` line. */
export interface ProcStat {
  /** User + system CPU time in ms (clock ticks of 10 ms); NaN when the line is malformed. */
  cpuMs: number;
  /** Minor page faults so far; NaN when the line is malformed. */
  minorFaults: number;
}

/** Parses the text of a `stat` file (see the module doc). */
export function parseProcStat(text: string): ProcStat {
  // Fields after "(comm) ": state is the first, minflt the 8th, utime the 12th, stime the 13th.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    cpuMs: (Number(fields[11]) + Number(fields[12])) * 10,
    minorFaults: Number(fields[7]),
  };
}
