// The fast tier (`npm run test:unit`): pure functions and unprivileged syscalls only, no root,
// no FUSE, no namespaces. The system tier (package.json "ava") leaves these files out, so a full
// run (.ci/run) runs each test once.
export default {
  files: ['dist/test/unit/**/*.test.js'],
  timeout: '30s',
  workerThreads: false,
};
