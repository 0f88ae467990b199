export const RUNTIME = Symbol('RUNTIME');
