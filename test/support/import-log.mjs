// `node --import ./test/support/import-log.mjs …` appends every module the process resolves to the file named
// by $IMPORT_LOG, one URL per line: how a test proves a command does not load what it does not use.
import { register } from 'node:module';

register('./import-log-hooks.mjs', import.meta.url);
