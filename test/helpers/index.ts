/** Everything the test helpers offer, from one import: `import { ... } from './helpers/index.js'`. */
export * from './proc.js';
export * from './tmp.js';
export * from './rootfs.js';
export * from './fidelity-tree.js';
export * from './namespaces.js';
export * from './nsview.js';
export * from './host-tar.js';
