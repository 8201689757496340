/** Runs once before all test files. Kept small: each integration test starts what it needs. */
export default function setup(): void {
  process.env.LOG_LEVEL ??= 'silent';
}
