/**
 * Runs one verification of both chains off the gateway's event loop (a
 * worker thread started by IntegrityService.verify): hashing millions of
 * records must not hold up proxied requests. Posts `{ report }` or
 * `{ error }` once and ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { IntegrityRepository } from './integrity.repository';
import { verifyAll } from './integrity.service';

const { databaseUrl } = workerData as { databaseUrl: string };
verifyAll(new IntegrityRepository(null), databaseUrl).then(
  (report) => parentPort?.postMessage({ report }),
  (err: Error) => parentPort?.postMessage({ error: err.message }),
);
