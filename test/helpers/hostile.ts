// The generator ships with the package (`strata chaos` sends it at live instances); the tests
// keep importing it from here.
export { acceptableHostileStatus, hostileRequests } from '../../src/chaos/hostile.js';
export type { HostileRequest } from '../../src/chaos/hostile.js';
