// React Native autolinking: where the native parts of this package are.
module.exports = {
  dependency: {
    platforms: {
      android: {
        sourceDir: './android',
        packageImportPath: 'import com.safestream.agent.reactnative.SafeStreamAgentPackage;',
        packageInstance: 'new SafeStreamAgentPackage()',
      },
      ios: {
        podspecPath: __dirname + '/react-native-safestream-agent.podspec',
      },
    },
  },
};
