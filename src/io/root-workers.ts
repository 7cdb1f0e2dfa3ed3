/** The io pool as access sees it (access/root-workers.ts): root work run in io workers. */
import type { RootWorkers } from '../access/root-workers.js';
import type { IoPool } from './pool.js';

export function rootWorkersOf(pool: IoPool): RootWorkers {
  return {
    openTaskRoot: (req, key) => pool.run({ op: 'openTaskRoot', ...req }, key),
    statRoots: (items) => pool.run({ op: 'statRoots', items }),
  };
}
