// Waiting for jobs started side by side as if they had run one after the
// other: every job settles first, then the failure reported is the earliest
// job's (callers start them in offset order, so it is the lowest offset's).

/** Wait for all of `jobs`; throw the first failure in their order. */
export async function settleInOrder (jobs: Array<Promise<unknown>>): Promise<void> {
  if (jobs.length === 1) {
    await jobs[0]
    return
  }
  const results = await Promise.allSettled(jobs)
  const failed = results.find(r => r.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
}
