/**
 * The thread name (comm) of every sandbox task, so that tools outside the daemon (`nsview list`)
 * can tell the daemon's own holds from real holders of a namespace. Trusted only inside the
 * processes of running nsview daemons (their pid files are root's), never by name alone.
 */
export const SANDBOX_THREAD_NAME = 'nsview-sandbox';
