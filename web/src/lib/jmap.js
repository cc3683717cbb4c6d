// placeholder replaced below
export function closeJmap() {}
