#!/usr/bin/env node
import { startFlowProxy } from './app.js';
import { createLogger } from './log.js';
import { loadSettings, SettingsError, USAGE } from './settings/settings.js';

async function main(): Promise<void> {
  let settings;
  try {
    settings = loadSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`flow-proxy: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (settings === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = createLogger(settings.logLevel);
  let proxy;
  try {
    proxy = await startFlowProxy(settings, log);
  } catch (error) {
    process.stderr.write(`flow-proxy: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing in-flight requests');
    proxy.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
