/**
 * HTTP/1.1 over an engine's unix socket (Docker's and Podman's APIs), with a deadline on every
 * request: a hung or half-dead engine costs one timed-out request, never a waiting caller.
 * Node's http client speaks to unix sockets through `socketPath`; no dependency is needed.
 */
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { E, NsviewError, errnoOf } from '../sys/errors.js';
import { parseJson } from './json.js';

/** Bounded response size: an engine's container list is kilobytes; a runaway answer is refused. */
const MAX_BODY = 32 << 20;

export interface UnixGetOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** GET `path` on the socket and parse the JSON body; rejects with NsviewError on any failure. */
export function unixGetJson(socketPath: string, path: string, opts: UnixGetOptions): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => fail(E.ECANCELED, 'aborted');
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (errno: number, msg: string): void => {
      if (settled) return;
      finish();
      req.destroy();
      reject(new NsviewError(errno, `${socketPath} GET ${path}: ${msg}`));
    };
    const req = request(
      { socketPath, path, method: 'GET', headers: { Host: 'engine', Accept: 'application/json' } },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > MAX_BODY) fail(E.EFBIG, 'response too large');
          else chunks.push(b);
        });
        res.on('error', (e) => fail(errnoOf(e), e.message));
        res.on('end', () => {
          if (settled) return;
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            fail(status === 404 ? E.ENOENT : E.EIO, `HTTP ${status}`);
            return;
          }
          const body = parseJson(Buffer.concat(chunks).toString('utf8'));
          if (body === undefined) {
            fail(E.EBADMSG, 'body is not JSON');
            return;
          }
          finish();
          resolve(body);
        });
      },
    );
    const timer = setTimeout(() => fail(E.ETIMEDOUT, `no answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    req.on('error', (e) => fail(errnoOf(e), e.message));
    if (opts.signal) {
      if (opts.signal.aborted) fail(E.ECANCELED, 'aborted');
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    req.end();
  });
}

/**
 * Opens a streaming GET (an events API) and calls `onLine` for each newline-separated chunk of
 * the body. Returns a function that closes it. `onEnd` is called once when the stream ends or
 * fails (not after close()).
 */
export function unixStreamLines(
  socketPath: string,
  path: string,
  onLine: (line: string) => void,
  onEnd: (err?: Error) => void,
): () => void {
  let closed = false;
  let ended = false;
  const end = (err?: Error): void => {
    if (ended || closed) return;
    ended = true;
    onEnd(err);
  };
  const req = request({ socketPath, path, method: 'GET', headers: { Host: 'engine' } }, (res) => {
    if ((res.statusCode ?? 0) !== 200) {
      res.resume();
      end(new NsviewError(E.EIO, `${socketPath} GET ${path}: HTTP ${res.statusCode}`));
      req.destroy();
      return;
    }
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      buf += s;
      if (buf.length > MAX_BODY) {
        req.destroy();
        end(new NsviewError(E.EFBIG, 'event too large'));
        return;
      }
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) onLine(line);
      }
    });
    res.on('end', () => end());
    res.on('error', (e) => end(e));
  });
  req.on('error', (e) => end(e));
  req.end();
  return () => {
    closed = true;
    req.destroy();
  };
}

/**
 * Whether something accepts connections on the socket: a daemon killed with SIGKILL leaves its
 * socket file behind, and connecting to it fails at once with ECONNREFUSED. Resolves, never rejects.
 */
export function probeUnixSocket(
  socketPath: string,
  timeoutMs: number,
): Promise<{ ok: true } | { ok: false; errno: number; message: string }> {
  return new Promise((resolve) => {
    const sock = connect({ path: socketPath });
    const done = (r: { ok: true } | { ok: false; errno: number; message: string }): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => done({ ok: false, errno: E.ETIMEDOUT, message: `connect ${socketPath}: no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (e) => done({ ok: false, errno: errnoOf(e), message: `connect ${socketPath}: ${e.message}` }));
  });
}

/**
 * Follow an engine's event stream as a change hint: `onChange` for every event line, the stream
 * reopened a second after it ends (the daemon restarted or went away; the registry's poll notices
 * meanwhile). Returns a function that stops following.
 */
export function followEvents(socket: string, path: string, onChange: () => void): () => void {
  let stopped = false;
  let close: (() => void) | undefined;
  let retry: NodeJS.Timeout | undefined;
  const open = (): void => {
    if (stopped) return;
    close = unixStreamLines(
      socket,
      path,
      () => onChange(),
      () => {
        if (!stopped) retry = setTimeout(open, 1000);
      },
    );
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    close?.();
  };
}
