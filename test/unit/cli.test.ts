import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/io.js';

test('--help prints usage and exits 0', async () => {
  const io = captureIo();
  assert.equal(await main(['--help'], io), 0);
  assert.match(io.out(), /Usage: strata/);
});

test('an unknown command exits non-zero with a message', async () => {
  const io = captureIo();
  assert.notEqual(await main(['no-such-command'], io), 0);
  assert.match(io.err(), /unknown command/);
});
