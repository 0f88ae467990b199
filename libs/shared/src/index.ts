export * from './errors';
export * from './ip';
export * from './key';
export * from './settings';
