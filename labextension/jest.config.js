/** Jest runs the pure parts (the API call and the panel model) on ts-jest, without a browser. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { module: 'commonjs', esModuleInterop: true, types: ['jest'] } }] },
  testMatch: ['**/src/__tests__/**/*.spec.ts']
};
