/**
 * One request on its way through the engine: the RequestContext its handler sees (who asked, an
 * abort signal, a reply another thread may write), the decoded call it will run, and whether it
 * has been answered. A class of its own because admission, the opcode table and the reply writer
 * all hold it, each for its own reason.
 */
import type { InHeader } from './codec.js';
import { writeOutHeader } from './codec.js';
import type { Call } from './opcodes.js';
import { OUT_HEADER_SIZE } from './protocol.js';
import type { DelegatedReply, RequestContext } from './types.js';
import { E, NsviewError } from '../sys/errors.js';

export class Request implements RequestContext {
  readonly unique: bigint;
  readonly nodeid: bigint;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** A reply has gone out (or was handed to another thread): nothing more may be written for it. */
  replied = false;
  /** Created only when a handler asks for the signal: most never do. */
  private controller: AbortController | undefined = undefined;
  private aborted = false;

  constructor(
    h: InHeader,
    /** The opcode's name (for traces and error reports). */
    readonly op: string,
    readonly call: Call,
    private readonly deviceFd: number,
  ) {
    this.unique = h.unique;
    this.nodeid = h.nodeid;
    this.uid = h.uid;
    this.gid = h.gid;
    this.pid = h.pid;
  }

  delegateReply(): DelegatedReply {
    const header = new Uint8Array(OUT_HEADER_SIZE);
    writeOutHeader(Buffer.from(header.buffer), 0, OUT_HEADER_SIZE, 0, this.unique);
    return { fd: this.deviceFd, header };
  }

  /** Aborted with an EINTR NsviewError on FUSE_INTERRUPT or when the session ends. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(interruptedError());
    }
    return this.controller.signal;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort(interruptedError());
  }
}

function interruptedError(): NsviewError {
  return new NsviewError(E.EINTR, 'request interrupted');
}
