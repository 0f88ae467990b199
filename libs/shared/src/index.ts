export * from './api';
export * from './errors';
export * from './ip';
export * from './key';
export * from './networks';
export * from './policy';
export * from './relay';
export * from './settings';
