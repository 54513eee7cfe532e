/**
 * Error positions in SQL that pgts rewrote. An ErrorResponse's position
 * field ('P') counts characters, from 1, of the query text the backend was
 * given; where naming.ts renamed a statement or a cursor in that text
 * (`EXECUTE q(…)` runs as `EXECUTE "pgts3:q"(…)`), the count is off by the
 * prefixes added before it, and psql's caret pointed past the mistake. The
 * edits of one text are kept here and the position is mapped back to the
 * client's text: by the lengths of the edits before it, or to the start of
 * the name it falls in.
 *
 * Only one rewritten text per input can be mapped (a Query, or the Parse
 * whose text was rewritten): after an error the backend skips the rest of
 * the input, but which of several rewritten texts failed is not known here,
 * so an input with more than one keeps the backend's positions.
 */

/** One replacement, in characters (code points) of the client's text. */
interface Edit {
  readonly at: number;
  readonly oldLength: number;
  readonly newLength: number;
}

/** The number of characters (code points, as PostgreSQL counts them) in `s`. */
function characters(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

/** The edits of one SQL text, made in order from its start. */
export class TextEdits {
  readonly #edits: Edit[] = [];
  #sourceAt = 0;
  #sourceCharacters = 0;

  constructor(readonly source: string) {}

  /** `source`'s characters `start` to `end` (string indices, after earlier edits) became `text`. */
  replaced(start: number, end: number, text: string): void {
    this.#sourceCharacters += characters(this.source.slice(this.#sourceAt, start));
    const oldLength = characters(this.source.slice(start, end));
    this.#edits.push({ at: this.#sourceCharacters, oldLength, newLength: characters(text) });
    this.#sourceCharacters += oldLength;
    this.#sourceAt = end;
  }

  /** A position (from 1) in the rewritten text, as a position in the client's. */
  original(position: number): number {
    let delta = 0;
    for (const e of this.#edits) {
      const start = e.at + delta;
      if (position - 1 < start) break;
      if (position - 1 < start + e.newLength) return e.at + 1;
      delta += e.newLength - e.oldLength;
    }
    return position - delta;
  }
}
