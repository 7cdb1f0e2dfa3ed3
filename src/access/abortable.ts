/**
 * Waiting on shared work with a request's abort signal: the waiter leaves at once (with the
 * signal's reason, an EINTR NsviewError for FUSE requests) while the work goes on for others.
 */
import { NsviewError, E } from '../sys/errors.js';

export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(reasonOf(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reasonOf(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new NsviewError(E.EIO, String(e)));
      },
    );
  });
}

function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new NsviewError(E.EINTR, 'interrupted');
}
