// Runs the CLI from the TypeScript sources (`node --import tsx src/cli/bin-dev.ts ...`), without a build.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
